/**
 * Resource usage on the page: the samples of the workloads being looked at, fetched from
 * `GET workloads/{name}/usage?since=` (only what is new each time), and the pure helpers
 * that turn them into figures and sparkline paths.
 *
 * Only what is shown is followed: the running rows of a visible sidebar (at most
 * `maxRows`, the newest) and the workloads whose usage tab is open. Nothing else polls.
 */
import { ISignal, Signal } from '@lumino/signaling';

import type { WorkbenchAPI } from './api';
import type { WorkloadModel } from './model';
import type { IUsageReport, IUsageSample, IUsageSummary, IWorkload } from './types';

/** Samples kept per workload on the page: an hour at the default 5 s period. */
export const MAX_SAMPLES = 720;
/** How many of the latest samples a sidebar sparkline draws (5 minutes at 5 s). */
export const SPARK_SAMPLES = 60;

const UNITS = ['Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

/** Bytes as the CLI writes them: "312Mi", "1.5Gi", "900"; "-" for none. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) {
    return '-';
  }
  for (let i = UNITS.length - 1; i >= 0; i--) {
    const scale = 1024 ** (i + 1);
    if (bytes >= scale) {
      const n = bytes / scale;
      return Number.isInteger(n) ? `${n}${UNITS[i]}` : `${n.toFixed(1)}${UNITS[i]}`;
    }
  }
  return `${Math.round(bytes)}`;
}

/** A CPU percentage (100 = one core) in cores: "0.05", "0.98", "2.4", "16"; "-" for none. */
export function formatCores(percent: number | null | undefined): string {
  if (percent === null || percent === undefined || !Number.isFinite(percent)) {
    return '-';
  }
  const cores = Math.max(0, percent) / 100;
  if (cores >= 10) {
    return cores.toFixed(0);
  }
  return cores >= 1 ? cores.toFixed(1) : cores.toFixed(2);
}

export function formatPercent(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value)
    ? '-'
    : `${Math.round(value)}%`;
}

/** "3s", "12m 5s", "1h 20m": how long a run took. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) {
    return `${s}s`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return s % 60 ? `${m}m ${s % 60}s` : `${m}m`;
  }
  const h = Math.floor(m / 60);
  return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
}

/**
 * An SVG path drawing `values` left to right in a `width` × `height` box, 0 at the bottom
 * and `top` (at least the largest value) at the top; "" with no values.
 */
export function sparkPath(
  values: readonly number[],
  width: number,
  height: number,
  top?: number
): string {
  const finite = values.map(v => (Number.isFinite(v) ? Math.max(0, v) : 0));
  if (!finite.length) {
    return '';
  }
  const max = Math.max(top ?? 0, ...finite) || 1;
  const step = finite.length > 1 ? width / (finite.length - 1) : 0;
  const y = (v: number): string => (height - (v / max) * height).toFixed(1);
  if (finite.length === 1) {
    return `M0,${y(finite[0])}H${width}`;
  }
  return finite.map((v, i) => `${i ? 'L' : 'M'}${(i * step).toFixed(1)},${y(v)}`).join('');
}

/** A round upper bound for a plot's y axis: 1, 2, 2.5, 5 times a power of ten, ≥ `value`. */
export function niceCeiling(value: number): number {
  if (!(value > 0) || !Number.isFinite(value)) {
    return 1;
  }
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) {
      return step * power;
    }
  }
  return 10 * power;
}

/** Append `incoming` (oldest first) to `held`, skipping samples already held, keeping `max`. */
export function mergeSamples(
  held: readonly IUsageSample[],
  incoming: readonly IUsageSample[],
  max = MAX_SAMPLES
): IUsageSample[] {
  const last = held.length ? held[held.length - 1].t : -Infinity;
  const merged = held.concat(incoming.filter(s => s.t > last));
  return merged.length > max ? merged.slice(merged.length - max) : merged;
}

/** What the page knows of one workload's usage. */
export interface IUsageState {
  summary: IUsageSummary | null;
  history: IUsageSample[];
  source: string | null;
  note: string | null;
  /** When it was last fetched (epoch ms). */
  fetched: number;
}

/** Follows the usage of what is on screen, and tells its views when something came. */
export class UsageTracker {
  constructor(
    private readonly _api: Pick<WorkbenchAPI, 'usage'>,
    private readonly _model: WorkloadModel,
    options: UsageTracker.IOptions = {}
  ) {
    this.periodMs = options.periodMs ?? 5000;
    this.maxRows = options.maxRows ?? 20;
    _model.changed.connect(this._onModelChanged, this);
  }

  readonly periodMs: number;
  readonly maxRows: number;

  /** Emitted with the name of a workload whose usage changed. */
  get changed(): ISignal<this, string> {
    return this._changed;
  }

  get(name: string): IUsageState | undefined {
    return this._states.get(name);
  }

  /** The freshest summary: the tracker's, else the record's own. */
  summary(workload: IWorkload): IUsageSummary | null {
    return this._states.get(workload.name)?.summary ?? workload.usage ?? null;
  }

  /** Follow the running rows (while the sidebar shows them) or stop. */
  setRowsShown(shown: boolean): void {
    this._rowsShown = shown;
    this._schedule();
  }

  /** Follow `name` until the returned function is called (a usage tab does, while open). */
  watch(name: string): () => void {
    this._watched.set(name, (this._watched.get(name) ?? 0) + 1);
    this._schedule();
    void this.poll([name]);
    return () => {
      const left = (this._watched.get(name) ?? 1) - 1;
      if (left > 0) {
        this._watched.set(name, left);
      } else {
        this._watched.delete(name);
      }
      this._schedule();
    };
  }

  /** The names followed now: watched ones, then the newest running rows when shown. */
  followed(): string[] {
    const names = new Set<string>();
    for (const name of this._watched.keys()) {
      const w = this._model.get(name);
      const state = this._states.get(name);
      // a finished workload is fetched once more after it ended, then left alone
      if (
        !w ||
        w.status === 'running' ||
        w.status === 'pending' ||
        !state ||
        !this._final.has(name)
      ) {
        names.add(name);
      }
    }
    if (this._rowsShown) {
      for (const w of this._model.list({ statuses: ['running'] }).slice(0, this.maxRows)) {
        names.add(w.name);
      }
    }
    return [...names];
  }

  /** Fetch what is new for `names` (default: those followed). */
  async poll(names: readonly string[] = this.followed()): Promise<void> {
    await Promise.all(names.map(name => this._fetch(name)));
    this._forgetUnshown(names);
  }

  dispose(): void {
    if (this._timer !== null) {
      clearInterval(this._timer);
      this._timer = null;
    }
    this._disposed = true;
    Signal.clearData(this);
  }

  private async _fetch(name: string): Promise<void> {
    if (this._inFlight.has(name)) {
      return;
    }
    this._inFlight.add(name);
    const held = this._states.get(name);
    const since = held?.history.length ? held.history[held.history.length - 1].t : undefined;
    let report: IUsageReport;
    try {
      report = await this._api.usage(name, since);
    } catch {
      return; // gone, or the server is away: the next poll tries again
    } finally {
      this._inFlight.delete(name);
    }
    if (this._disposed) {
      return;
    }
    const status = this._model.get(name)?.status;
    if (status && status !== 'running' && status !== 'pending') {
      this._final.add(name);
    }
    this._states.set(name, {
      summary: report.summary,
      history: mergeSamples(held?.history ?? [], report.history),
      source: report.source,
      note: report.note,
      fetched: Date.now()
    });
    this._changed.emit(name);
  }

  /** Drop the samples of workloads no longer followed (they would be fetched anew). */
  private _forgetUnshown(polled: readonly string[]): void {
    const keep = new Set([...this.followed(), ...polled]);
    for (const name of this._watched.keys()) {
      keep.add(name);
    }
    for (const name of [...this._states.keys()]) {
      if (!keep.has(name)) {
        this._states.delete(name);
        this._final.delete(name);
      }
    }
  }

  /** A row that starts running is fetched at once, not at the next period. */
  private _onModelChanged(): void {
    if (!this._rowsShown || this._disposed) {
      return;
    }
    const fresh = this.followed().filter(name => !this._states.has(name));
    if (fresh.length) {
      void Promise.all(fresh.map(name => this._fetch(name)));
    }
  }

  private _schedule(): void {
    const wanted = this._rowsShown || this._watched.size > 0;
    if (wanted && this._timer === null && !this._disposed) {
      this._timer = setInterval(() => void this.poll(), this.periodMs);
      void this.poll();
    } else if (!wanted && this._timer !== null) {
      clearInterval(this._timer);
      this._timer = null;
    }
  }

  private _states = new Map<string, IUsageState>();
  private _final = new Set<string>();
  private _watched = new Map<string, number>();
  private _inFlight = new Set<string>();
  private _rowsShown = false;
  private _timer: ReturnType<typeof setInterval> | null = null;
  private _disposed = false;
  private _changed = new Signal<this, string>(this);
}

export namespace UsageTracker {
  export interface IOptions {
    /** Milliseconds between two polls (the supervisor samples every 5 s by default). */
    periodMs?: number;
    /** The most running rows followed at once (the newest). */
    maxRows?: number;
  }
}
