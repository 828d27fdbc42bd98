/**
 * The panel's state: workloads keyed by name, kept current by server events.
 *
 * No DOM and no server calls here: the plugin feeds it records and events, the
 * panel renders what it holds, and the tests drive it directly.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { isFinal } from './format';
import type { IWorkload, IWorkloadEvent, Kind, NotifyMode, Status } from './types';

/** A workload reaching a final status while the page watched it. */
export interface ITransition {
  name: string;
  kind: Kind;
  from: Status | null;
  to: Status;
  message: string;
  exitCode: number | null;
  /** Whether this page launched it. */
  launchedHere: boolean;
  /** When it was launched, started (null: never ran) and ended, in epoch seconds. */
  created: number;
  started: number | null;
  /** The record's end, else when the page learnt of it. */
  ended: number;
}

/** What the caller should do after an event was applied. */
export interface IEventResult {
  /** The event only carried a summary: fetch the full record (`GET workloads/{name}`). */
  refetch: boolean;
}

export interface IFilter {
  kinds?: readonly Kind[];
  statuses?: readonly Status[];
}

export interface ISection {
  kind: Kind;
  workloads: IWorkload[];
}

/** Seconds a finished workload ran: from its start (its launch if it never started) to its end. */
export function runSeconds(transition: ITransition): number {
  return Math.max(0, transition.ended - (transition.started ?? transition.created));
}

/**
 * Whether a finished workload deserves a notification under `mode`: every one ("all") or
 * those launched from this page ("mine"), that ran at least `minSeconds`.
 */
export function shouldNotify(transition: ITransition, mode: NotifyMode, minSeconds = 0): boolean {
  const whose = mode === 'all' || (mode === 'mine' && transition.launchedHere);
  return whose && runSeconds(transition) >= minSeconds;
}

/** Newest first; the name breaks ties so the order is stable. */
export function compareWorkloads(a: IWorkload, b: IWorkload): number {
  if (a.created !== b.created) {
    return b.created - a.created;
  }
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * Merge a newer view of a workload into the one held. A final status is never
 * replaced by an active one: a record fetched before the event that finished
 * it must not bring it back to life (the store applies the same rule).
 */
export function mergeWorkload(held: IWorkload, incoming: IWorkload): IWorkload {
  if (isFinal(held.status) && !isFinal(incoming.status)) {
    return {
      ...incoming,
      status: held.status,
      message: held.message,
      exit_code: held.exit_code,
      ended: held.ended ?? incoming.ended
    };
  }
  return { ...held, ...incoming };
}

/** A stand-in record built from an event until the full record arrives. */
export function placeholderFrom(event: IWorkloadEvent, now: number): IWorkload {
  return {
    id: event.name,
    name: event.name,
    kind: event.kind,
    backend: event.backend,
    status: event.status,
    message: event.message ?? '',
    exit_code: event.exit_code ?? null,
    created: now,
    started: null,
    ended: null,
    age: 0,
    gpus: [],
    owner: '',
    session: null,
    run_dir: '',
    spec: { kind: event.kind }
  };
}

export class WorkloadModel {
  constructor(options: WorkloadModel.IOptions = {}) {
    this._now = options.now ?? (() => Date.now() / 1000);
  }

  /** Emitted after any change to the set of workloads or to one of them. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted when a workload this model held reaches a final status. */
  get finished(): ISignal<this, ITransition> {
    return this._finished;
  }

  get size(): number {
    return this._items.size;
  }

  /** The current time in epoch seconds, for age columns. */
  now(): number {
    return this._now();
  }

  get(name: string): IWorkload | undefined {
    return this._items.get(name);
  }

  has(name: string): boolean {
    return this._items.has(name);
  }

  /** Remember that this page launched `name` (notifications may be limited to those). */
  markLaunched(name: string): void {
    this._launched.add(name);
    // It may have finished before the launch request answered: report it again as ours.
    const early = this._early.get(name);
    if (early) {
      this._early.delete(name);
      this._finished.emit({ ...early, launchedHere: true });
    }
  }

  isLaunchedHere(name: string): boolean {
    return this._launched.has(name);
  }

  /** Replace everything with a full listing (`GET workloads`). */
  replaceAll(records: readonly IWorkload[]): void {
    const next = new Map<string, IWorkload>();
    const transitions: ITransition[] = [];
    for (const record of records) {
      const held = this._items.get(record.name);
      const merged = held ? mergeWorkload(held, record) : record;
      next.set(record.name, merged);
      if (held) {
        this._collect(held, merged, transitions);
      }
    }
    this._items = next;
    this._emit(transitions);
  }

  /**
   * Store a fetched record. With `onlyIfKnown`, a record the model no longer
   * holds (removed while the fetch was in flight) is dropped.
   */
  upsert(record: IWorkload, options: { onlyIfKnown?: boolean } = {}): void {
    const held = this._items.get(record.name);
    if (!held && options.onlyIfKnown) {
      return;
    }
    const merged = held ? mergeWorkload(held, record) : record;
    this._items.set(record.name, merged);
    const transitions: ITransition[] = [];
    if (held) {
      this._collect(held, merged, transitions);
    }
    this._emit(transitions);
  }

  /** Forget one workload. */
  remove(name: string): boolean {
    const removed = this._items.delete(name);
    this._early.delete(name);
    if (removed) {
      this._changed.emit();
    }
    return removed;
  }

  /** Apply a server event; the result says whether to fetch the full record. */
  applyEvent(event: IWorkloadEvent): IEventResult {
    if (event.action === 'removed') {
      this.remove(event.name);
      return { refetch: false };
    }
    const held = this._items.get(event.name);
    if (!held) {
      this._items.set(event.name, placeholderFrom(event, this._now()));
      this._changed.emit();
      return { refetch: true };
    }
    const update: IWorkload = {
      ...held,
      status: event.status,
      message: event.message ?? held.message,
      exit_code: event.exit_code ?? held.exit_code
    };
    const merged = mergeWorkload(held, update);
    this._items.set(event.name, merged);
    const transitions: ITransition[] = [];
    this._collect(held, merged, transitions);
    this._emit(transitions);
    return { refetch: true };
  }

  /** The workloads that pass `filter`, newest first. */
  list(filter: IFilter = {}): IWorkload[] {
    const kinds = filter.kinds ? new Set<Kind>(filter.kinds) : null;
    const statuses = filter.statuses ? new Set<Status>(filter.statuses) : null;
    const out: IWorkload[] = [];
    for (const workload of this._items.values()) {
      if (kinds && !kinds.has(workload.kind)) {
        continue;
      }
      if (statuses && !statuses.has(workload.status)) {
        continue;
      }
      out.push(workload);
    }
    return out.sort(compareWorkloads);
  }

  /** One section per kind in `kinds` order, empty ones included. */
  sections(kinds: readonly Kind[], statuses?: readonly Status[]): ISection[] {
    return kinds.map(kind => ({
      kind,
      workloads: this.list({ kinds: [kind], statuses })
    }));
  }

  private _collect(held: IWorkload, next: IWorkload, out: ITransition[]): void {
    if (isFinal(next.status) && !isFinal(held.status)) {
      const transition: ITransition = {
        name: next.name,
        kind: next.kind,
        from: held.status,
        to: next.status,
        message: next.message,
        exitCode: next.exit_code,
        launchedHere: this._launched.has(next.name),
        created: next.created,
        started: next.started ?? held.started ?? null,
        ended: next.ended ?? this._now()
      };
      if (!transition.launchedHere) {
        this._early.set(next.name, transition);
      }
      out.push(transition);
    }
  }

  private _emit(transitions: ITransition[]): void {
    this._changed.emit();
    for (const transition of transitions) {
      this._finished.emit(transition);
    }
  }

  private _items = new Map<string, IWorkload>();
  private _launched = new Set<string>();
  private _early = new Map<string, ITransition>();
  private _now: () => number;
  private _changed = new Signal<this, void>(this);
  private _finished = new Signal<this, ITransition>(this);
}

export namespace WorkloadModel {
  export interface IOptions {
    /** Clock in epoch seconds; tests pass a fixed one. */
    now?: () => number;
  }
}
