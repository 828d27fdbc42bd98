/**
 * What a workload's detail view shows and offers, from its record alone.
 * Pure: no DOM, no server calls (the tests use it directly).
 */
import { dashboardLink, endpointView, isActive, isFinal } from './format';
import type { IWorkload, Status } from './types';

/** The actions a detail view may offer, in the order its toolbar shows them. */
export type DetailAction =
  | 'logs'
  | 'output'
  | 'cancel'
  | 'rerun'
  | 'clone'
  | 'scale'
  | 'rollout'
  | 'promote'
  | 'undo'
  | 'scaleEndpoint'
  | 'pause'
  | 'resume'
  | 'delete';

export interface IActionContext {
  /** Whether the clone command (the launch form, helper B's clone.ts) is registered. */
  canClone: boolean;
  /** Whether the run directory holds an executed notebook (`files.notebook`). */
  hasOutput: boolean;
}

/** Whether the workload is a schedule (a Kubernetes CronJob notebook run). */
export function isSchedule(workload: IWorkload): boolean {
  return typeof workload.spec.schedule === 'string' && workload.spec.schedule !== '';
}

/** Whether a schedule is paused (the CronJob's `suspend`): `info.schedule.suspended`. */
export function isPaused(workload: IWorkload): boolean {
  const schedule = workload.info?.['schedule'];
  return (
    typeof schedule === 'object' &&
    schedule !== null &&
    (schedule as { suspended?: unknown }).suspended === true
  );
}

/** The scheduler's address of a Dask cluster (`tcp://…`), when the record has one. */
export function schedulerAddress(workload: IWorkload): string | null {
  if (workload.kind !== 'dask') {
    return null;
  }
  const info = workload.info ?? {};
  for (const key of ['address', 'scheduler_address', 'scheduler']) {
    const value = info[key];
    if (typeof value === 'string' && /^[a-z]+:\/\/\S+$/i.test(value)) {
      return value;
    }
  }
  return null;
}

/** The code a notebook runs to connect to the cluster. */
export function clientCode(address: string): string {
  return `from dask.distributed import Client; client = Client("${address.replace(/"/g, '')}")`;
}

/** Workers connected to the scheduler now (`workers_live`), or null when not reported. */
export function liveWorkers(workload: IWorkload): number | null {
  const record = workload as IWorkload & { workers_live?: unknown };
  const value = record.workers_live ?? workload.info?.['workers_live'];
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : null;
}

/** The actions that fit the workload's kind and state. */
export function detailActions(workload: IWorkload, context: IActionContext): DetailAction[] {
  const actions: DetailAction[] = ['logs'];
  const active = isActive(workload.status);
  const running = workload.status === 'running';
  const schedule = isSchedule(workload);
  if (context.hasOutput) {
    actions.push('output');
  }
  if (active && !schedule) {
    actions.push('cancel');
  }
  if (isFinal(workload.status) && !schedule) {
    actions.push('rerun');
  }
  if (context.canClone) {
    actions.push('clone');
  }
  if (workload.kind === 'dask' && running) {
    // adapting (MIN:MAX) and "Copy client code" sit in the view's Dask section
    actions.push('scale');
  }
  if (workload.kind === 'serve' && running) {
    actions.push('rollout');
    if (endpointView(workload)?.canary !== null) {
      actions.push('promote');
    }
    actions.push('undo', 'scaleEndpoint');
  }
  if (schedule) {
    actions.push(isPaused(workload) ? 'resume' : 'pause');
  }
  actions.push('delete');
  return actions;
}

/** "MIN:MAX" → the range; an error message in UI words otherwise. */
export function parseAdapt(text: string): { minimum: number; maximum: number } | string {
  const match = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(text);
  if (!match) {
    return `an adaptive range is two whole numbers like 1:4 (got '${text.trim()}')`;
  }
  const minimum = Number(match[1]);
  const maximum = Number(match[2]);
  if (maximum < 1 || minimum > maximum) {
    return `the maximum must be at least 1 and not below the minimum (got '${text.trim()}')`;
  }
  return { minimum, maximum };
}

/** Seconds: queued (launch to start), running (start to end, or to now). */
export interface ITimings {
  created: number;
  started: number | null;
  ended: number | null;
  queuedSeconds: number | null;
  /** The run's duration; elapsed so far while it runs. */
  durationSeconds: number;
}

export function timings(workload: IWorkload, now: number): ITimings {
  const { created, started, ended } = workload;
  const queuedSeconds = started !== null ? Math.max(0, started - created) : null;
  const recorded = (workload as IWorkload & { duration_seconds?: unknown }).duration_seconds;
  const from = started ?? created;
  const durationSeconds =
    ended !== null
      ? Math.max(0, ended - from)
      : typeof recorded === 'number' && recorded >= 0
        ? recorded
        : Math.max(0, now - from);
  return { created, started, ended, queuedSeconds, durationSeconds };
}

/** One step of a workload's life: its status from time `t` (epoch seconds; null: unknown). */
export interface IHistoryEntry {
  status: Status;
  t: number | null;
  message: string;
}

/**
 * The status history: pending at launch, running at its start, the final status at its end
 * (from the record), with the changes the page saw itself merged in, oldest first.
 */
export function statusHistory(
  workload: IWorkload,
  observed: readonly IHistoryEntry[] = []
): IHistoryEntry[] {
  const entries: IHistoryEntry[] = [{ status: 'pending', t: workload.created, message: '' }];
  if (workload.started !== null) {
    entries.push({ status: 'running', t: workload.started, message: '' });
  }
  for (const entry of observed) {
    if (!entries.some(e => e.status === entry.status)) {
      entries.push({ ...entry });
    }
  }
  if (isFinal(workload.status)) {
    const final = entries.find(e => e.status === workload.status);
    const t = workload.ended ?? final?.t ?? null;
    const others = entries.filter(e => e.status !== workload.status);
    others.push({ status: workload.status, t, message: workload.message });
    return others.sort(byTime);
  }
  return entries.sort(byTime);
}

const ORDER: Status[] = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];

function byTime(a: IHistoryEntry, b: IHistoryEntry): number {
  if (a.t !== null && b.t !== null && a.t !== b.t) {
    return a.t - b.t;
  }
  return ORDER.indexOf(a.status) - ORDER.indexOf(b.status);
}

/** Where it failed: the notebook cell or training rank its message names, else null. */
export function failurePoint(workload: IWorkload): string | null {
  if (workload.status !== 'failed') {
    return null;
  }
  const cell = /\bcell (\d+) failed\b/.exec(workload.message);
  if (cell) {
    return `cell ${cell[1]}`;
  }
  const rank = /\brank (\d+) failed\b/.exec(workload.message);
  return rank ? `rank ${rank[1]}` : null;
}

/** A notebook run's progress ("cell 3 of 10"), when the record carries it. */
export function progressLabel(workload: IWorkload): string | null {
  const progress = (workload as IWorkload & { progress?: unknown }).progress;
  if (!progress || typeof progress !== 'object') {
    return null;
  }
  const { done, total, label } = progress as { done?: unknown; total?: unknown; label?: unknown };
  if (typeof label === 'string' && label) {
    return label;
  }
  return typeof done === 'number' && typeof total === 'number' ? `${done} of ${total}` : null;
}

/** The endpoint address of a serve workload that runs; null otherwise. */
export function endpointURL(workload: IWorkload): string | null {
  return workload.status === 'running' ? (endpointView(workload)?.url ?? null) : null;
}

/** The Dask dashboard of a running cluster, through the server when it can be. */
export function dashboardOf(workload: IWorkload, baseUrl: string): string | null {
  return workload.kind === 'dask' && workload.status === 'running'
    ? dashboardLink(workload, baseUrl)
    : null;
}

/** "2026-12-01 15:20:13" in local time; "–" when unknown. */
export function formatTime(t: number | null): string {
  if (t === null || !Number.isFinite(t)) {
    return '–';
  }
  const d = new Date(t * 1000);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}
