/**
 * The server extension's endpoints, typed; each is one `requestAPI` call.
 */
import type { ServerConnection } from '@jupyterlab/services';

import type { INotebookParameters } from './batchparams';
import { apiURL, requestAPI, send } from './handler';
import type { IRunFiles } from './runfiles';
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

/** One run a schedule made (`GET workloads/NAME/runs`). */
export interface IScheduledRun {
  name: string;
  status: string;
  message?: string;
  started: number | null;
  ended: number | null;
  /** The run's directory. */
  location?: string | null;
}

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

  /** The files of a workload's run directory, and which one is the executed notebook. */
  files(name: string): Promise<IRunFiles> {
    return requestAPI<IRunFiles>(`workloads/${encodeURIComponent(name)}/files`, {
      settings: this.settings
    });
  }

  /** Where one run file downloads (an attachment), or shows inline (`inline`). */
  fileURL(name: string, rel: string, inline = false): string {
    const path = rel
      .split('/')
      .map(part => encodeURIComponent(part))
      .join('/');
    return apiURL(
      `workloads/${encodeURIComponent(name)}/files/${path}`,
      inline ? { inline: 1 } : {},
      this.settings
    );
  }

  /** A run file's content (inline: JSON for notebooks, text for the rest). */
  async fileContent(name: string, rel: string): Promise<Response> {
    const path = rel
      .split('/')
      .map(part => encodeURIComponent(part))
      .join('/');
    return send(`workloads/${encodeURIComponent(name)}/files/${path}`, {
      query: { inline: 1 },
      settings: this.settings
    });
  }

  /** Launch it again: the same spec (or notebook snapshot), with parameters and a name changed. */
  rerun(
    name: string,
    request: { parameters?: { [key: string]: unknown }; name?: string } = {}
  ): Promise<IWorkload> {
    return requestAPI<IWorkload>(`workloads/${encodeURIComponent(name)}/rerun`, {
      method: 'POST',
      body: request,
      settings: this.settings
    });
  }

  /** The launchable spec of a workload (what "clone" fills the form with). */
  spec(name: string): Promise<{ kind: Kind; spec: { [key: string]: unknown } }> {
    return requestAPI<{ kind: Kind; spec: { [key: string]: unknown } }>(
      `workloads/${encodeURIComponent(name)}/spec`,
      { settings: this.settings }
    );
  }

  /** A notebook's declared parameters and the default workload name for it. */
  notebookParameters(path: string): Promise<INotebookParameters> {
    return requestAPI<INotebookParameters>('notebook-parameters', {
      query: { path },
      settings: this.settings
    });
  }

  /** Pause or resume a schedule. */
  setPaused(name: string, paused: boolean): Promise<IWorkload> {
    return requestAPI<IWorkload>(
      `workloads/${encodeURIComponent(name)}/${paused ? 'pause' : 'resume'}`,
      { method: 'POST', body: {}, settings: this.settings }
    );
  }

  /** The runs a schedule made. */
  async runs(name: string): Promise<IScheduledRun[]> {
    const reply = await requestAPI<{ runs: IScheduledRun[] }>(
      `workloads/${encodeURIComponent(name)}/runs`,
      { settings: this.settings }
    );
    return reply.runs ?? [];
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
