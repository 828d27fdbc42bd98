/**
 * The server extension's endpoints, typed; each is one `requestAPI` call.
 */
import type { ServerConnection } from '@jupyterlab/services';

import { requestAPI, send } from './handler';
import type {
  IBackends,
  IJSONSchema,
  IProfile,
  IRevision,
  IRolloutState,
  IUsageReport,
  IWorkload,
  Kind,
  RolloutRequest
} from './types';

export interface IListQuery {
  kind?: Kind;
  status?: string;
  backend?: string;
}

export class WorkbenchAPI {
  constructor(readonly settings: ServerConnection.ISettings) {}

  async list(query: IListQuery = {}): Promise<IWorkload[]> {
    const reply = await requestAPI<{ workloads: IWorkload[] }>('workloads', {
      query: { ...query },
      settings: this.settings
    });
    return reply.workloads;
  }

  get(name: string): Promise<IWorkload> {
    return requestAPI<IWorkload>(`workloads/${encodeURIComponent(name)}`, {
      settings: this.settings
    });
  }

  /** Launch from a spec; a bad spec rejects with an `APIError` carrying message and hint. */
  launch(spec: { [key: string]: unknown }): Promise<IWorkload> {
    return requestAPI<IWorkload>('workloads', {
      method: 'POST',
      body: spec,
      settings: this.settings
    });
  }

  cancel(name: string): Promise<IWorkload> {
    return requestAPI<IWorkload>(`workloads/${encodeURIComponent(name)}/cancel`, {
      method: 'POST',
      settings: this.settings
    });
  }

  async remove(name: string, force = false): Promise<void> {
    await requestAPI<void>(`workloads/${encodeURIComponent(name)}`, {
      method: 'DELETE',
      query: force ? { force: true } : {},
      settings: this.settings
    });
  }

  scale(name: string, request: { workers: number } | { adapt: string }): Promise<IWorkload> {
    return requestAPI<IWorkload>(`workloads/${encodeURIComponent(name)}/scale`, {
      method: 'POST',
      body: request,
      settings: this.settings
    });
  }

  /** Resource usage: the summary and the samples kept (only those after `since`, when given). */
  usage(name: string, since?: number): Promise<IUsageReport> {
    return requestAPI<IUsageReport>(`workloads/${encodeURIComponent(name)}/usage`, {
      query: since === undefined ? {} : { since },
      settings: this.settings
    });
  }

  /** Ship a new revision of an endpoint, undo its last rollout or promote its canary. */
  rollout(name: string, request: RolloutRequest): Promise<IRolloutState> {
    return requestAPI<IRolloutState>(`workloads/${encodeURIComponent(name)}/rollout`, {
      method: 'POST',
      body: request,
      settings: this.settings
    });
  }

  rolloutState(name: string): Promise<IRolloutState> {
    return requestAPI<IRolloutState>(`workloads/${encodeURIComponent(name)}/rollout`, {
      settings: this.settings
    });
  }

  async revisions(name: string): Promise<IRevision[]> {
    const reply = await requestAPI<{ revisions: IRevision[] }>(
      `workloads/${encodeURIComponent(name)}/revisions`,
      { settings: this.settings }
    );
    return reply.revisions;
  }

  /** A fixed number of replicas, or autoscaling between "MIN:MAX". */
  scaleEndpoint(
    name: string,
    request: { replicas: number } | { autoscale: string }
  ): Promise<IWorkload> {
    return requestAPI<IWorkload>(`workloads/${encodeURIComponent(name)}/endpoint-scale`, {
      method: 'POST',
      body: request,
      settings: this.settings
    });
  }

  /** The log text as it is written; `onText` gets each decoded chunk. Ends with the stream. */
  async streamLogs(
    name: string,
    onText: (text: string) => void,
    options: { follow?: boolean; signal?: AbortSignal } = {}
  ): Promise<void> {
    const response = await send(`workloads/${encodeURIComponent(name)}/logs`, {
      query: { follow: options.follow ?? true },
      signal: options.signal,
      settings: this.settings
    });
    if (!response.body) {
      onText(await response.text());
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      onText(decoder.decode(value, { stream: true }));
    }
    onText(decoder.decode());
  }

  async schemas(): Promise<{ [kind: string]: IJSONSchema }> {
    return requestAPI<{ [kind: string]: IJSONSchema }>('schemas', { settings: this.settings });
  }

  async profiles(): Promise<{ [name: string]: IProfile }> {
    const reply = await requestAPI<{ profiles: { [name: string]: IProfile } }>('profiles', {
      settings: this.settings
    });
    return reply.profiles ?? {};
  }

  /** Which backends answer; a cluster probe can be slow, so a caller may bound it. */
  backends(signal?: AbortSignal): Promise<IBackends> {
    return requestAPI<IBackends>('backends', { settings: this.settings, signal });
  }
}
