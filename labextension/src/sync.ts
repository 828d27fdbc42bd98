/**
 * Keeps a WorkloadModel current: one listing at start (and on "Refresh"), then
 * the server's workload events. Nothing polls.
 */
import type { Event } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import type { WorkbenchAPI } from './api';
import { APIError, errorMessage } from './handler';
import type { WorkloadModel } from './model';
import type { IWorkloadEvent } from './types';

/** The schema id of the server extension's events. */
export const EVENT_SCHEMA = 'https://events.jupyter.org/jupyter_ml_workbench/workload/v1';

/** The event's data, when the emission is one of ours. */
export function workloadEvent(emission: Event.Emission): IWorkloadEvent | null {
  if (emission.schema_id !== EVENT_SCHEMA) {
    return null;
  }
  const { action, name } = emission as unknown as Partial<IWorkloadEvent>;
  if (
    typeof name !== 'string' ||
    (action !== 'added' && action !== 'changed' && action !== 'removed')
  ) {
    return null;
  }
  return emission as unknown as IWorkloadEvent;
}

export class WorkloadSync {
  constructor(
    readonly api: WorkbenchAPI,
    readonly model: WorkloadModel
  ) {}

  /** The last listing error, shown by the panel; null when the last refresh worked. */
  get error(): string | null {
    return this._error;
  }

  /** Emitted when `error` changes. */
  get errorChanged(): ISignal<this, string | null> {
    return this._errorChanged;
  }

  /** Replace the model's content with a fresh listing. */
  async refresh(): Promise<void> {
    try {
      this.model.replaceAll(await this.api.list());
      this._setError(null);
    } catch (error) {
      this._setError(errorMessage(error));
      throw error;
    }
  }

  /** Follow the event stream until disposed. */
  connect(events: Event.IManager): void {
    events.stream.connect(this._onEmission, this);
  }

  disconnect(events: Event.IManager): void {
    events.stream.disconnect(this._onEmission, this);
  }

  /** Fetch one record (coalescing bursts of events for the same name). */
  async fetchOne(name: string): Promise<void> {
    if (this._inFlight.has(name)) {
      this._dirty.add(name);
      return;
    }
    this._inFlight.add(name);
    try {
      do {
        this._dirty.delete(name);
        try {
          this.model.upsert(await this.api.get(name), { onlyIfKnown: true });
        } catch (error) {
          if (error instanceof APIError && error.status === 404) {
            this.model.remove(name);
            return;
          }
          console.warn(`workbench: could not fetch ${name}:`, error);
          return;
        }
      } while (this._dirty.has(name));
    } finally {
      this._inFlight.delete(name);
      this._dirty.delete(name);
    }
  }

  private _onEmission(_: Event.IManager, emission: Event.Emission): void {
    const event = workloadEvent(emission);
    if (!event) {
      return;
    }
    if (this.model.applyEvent(event).refetch) {
      void this.fetchOne(event.name);
    }
  }

  private _setError(error: string | null): void {
    if (error !== this._error) {
      this._error = error;
      this._errorChanged.emit(error);
    }
  }

  private _error: string | null = null;
  private _errorChanged = new Signal<this, string | null>(this);
  private _inFlight = new Set<string>();
  private _dirty = new Set<string>();
}
