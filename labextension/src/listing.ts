/**
 * The workload list's state, without DOM: search, status and kind filters, sort order,
 * multi-selection, the rows a window of the list shows, durations and progress.
 *
 * The panel renders what these functions compute; the tests drive them directly.
 */
import { isActive, isFinal, kindLabel } from './format';
import type { IWorkload, Kind, Status } from './types';
import { formatDuration as formatRunTime } from './usage';

/** A status filter: one status, the active ones, the finished ones, or all. */
export type StatusFilter = Status | 'active' | 'finished' | 'all';

export const STATUS_FILTERS: readonly { value: StatusFilter; label: string }[] = [
  { value: 'all', label: 'All statuses' },
  { value: 'active', label: 'Active (pending, running)' },
  { value: 'pending', label: 'Pending' },
  { value: 'running', label: 'Running' },
  { value: 'finished', label: 'Finished' },
  { value: 'succeeded', label: 'Succeeded' },
  { value: 'failed', label: 'Failed' },
  { value: 'cancelled', label: 'Cancelled' }
];

export type SortOrder = 'newest' | 'oldest' | 'name' | 'status';

export const SORT_ORDERS: readonly { value: SortOrder; label: string }[] = [
  { value: 'newest', label: 'Newest first' },
  { value: 'oldest', label: 'Oldest first' },
  { value: 'name', label: 'Name' },
  { value: 'status', label: 'Status' }
];

export interface IListQuery {
  /** Words that must all appear in the name, kind, status or backend (case-insensitive). */
  search: string;
  status: StatusFilter;
  kind: Kind | 'all';
  sort: SortOrder;
}

export const DEFAULT_QUERY: IListQuery = { search: '', status: 'all', kind: 'all', sort: 'newest' };

export function matchesStatus(status: Status, filter: StatusFilter): boolean {
  switch (filter) {
    case 'all':
      return true;
    case 'active':
      return isActive(status);
    case 'finished':
      return isFinal(status);
    default:
      return status === filter;
  }
}

function haystack(w: IWorkload): string {
  return `${w.name} ${w.kind} ${kindLabel(w.kind)} ${w.status} ${w.backend}`.toLowerCase();
}

/** Whether a workload passes the search words, the status and the kind filter. */
export function matches(w: IWorkload, query: IListQuery, kinds?: readonly Kind[]): boolean {
  if (kinds && !kinds.includes(w.kind)) {
    return false;
  }
  if (query.kind !== 'all' && w.kind !== query.kind) {
    return false;
  }
  if (!matchesStatus(w.status, query.status)) {
    return false;
  }
  const words = query.search.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) {
    return true;
  }
  const text = haystack(w);
  return words.every(word => text.includes(word));
}

const STATUS_RANK: { [S in Status]: number } = {
  running: 0,
  pending: 1,
  failed: 2,
  cancelled: 3,
  succeeded: 4
};

function byNewest(a: IWorkload, b: IWorkload): number {
  if (a.created !== b.created) {
    return b.created - a.created;
  }
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The comparator of a sort order; every order falls back to newest first, then name. */
export function comparator(sort: SortOrder): (a: IWorkload, b: IWorkload) => number {
  switch (sort) {
    case 'oldest':
      return (a, b) => -byNewest(a, b);
    case 'name':
      return (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : byNewest(a, b));
    case 'status':
      return (a, b) => STATUS_RANK[a.status] - STATUS_RANK[b.status] || byNewest(a, b);
    default:
      return byNewest;
  }
}

/** The rows to show, in order. */
export function visibleWorkloads(
  all: Iterable<IWorkload>,
  query: IListQuery,
  kinds?: readonly Kind[]
): IWorkload[] {
  const out: IWorkload[] = [];
  for (const w of all) {
    if (matches(w, query, kinds)) {
      out.push(w);
    }
  }
  return out.sort(comparator(query.sort));
}

/** How many of each status a list holds (for the filter's counts). */
export function countByStatus(workloads: readonly IWorkload[]): { [S in Status]: number } {
  const counts = { pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const w of workloads) {
    counts[w.status] += 1;
  }
  return counts;
}

// -- selection ---------------------------------------------------------------------------------

/**
 * Toggle one row; with `range` (shift-click), select every row from the last one clicked
 * (`anchor`) to this one, in the order shown.
 */
export function toggleSelection(
  selected: ReadonlySet<string>,
  order: readonly string[],
  name: string,
  options: { range?: boolean; anchor?: string | null } = {}
): Set<string> {
  const next = new Set(selected);
  const from = options.anchor ? order.indexOf(options.anchor) : -1;
  const to = order.indexOf(name);
  if (options.range && from >= 0 && to >= 0) {
    const [lo, hi] = from < to ? [from, to] : [to, from];
    for (let i = lo; i <= hi; i++) {
      next.add(order[i]);
    }
    return next;
  }
  if (next.has(name)) {
    next.delete(name);
  } else {
    next.add(name);
  }
  return next;
}

/** Select every row shown, or none when all of them already are. */
export function toggleAll(selected: ReadonlySet<string>, order: readonly string[]): Set<string> {
  const all = order.length > 0 && order.every(name => selected.has(name));
  return all ? new Set() : new Set([...selected, ...order]);
}

/** The selection without the names no longer listed (deleted, filtered out). */
export function pruneSelection(
  selected: ReadonlySet<string>,
  order: readonly string[]
): Set<string> {
  const shown = new Set(order);
  return new Set([...selected].filter(name => shown.has(name)));
}

/** "all", "some" or "none" of the rows shown are selected (the header checkbox's state). */
export function selectionState(
  selected: ReadonlySet<string>,
  order: readonly string[]
): 'all' | 'some' | 'none' {
  let count = 0;
  for (const name of order) {
    if (selected.has(name)) {
      count++;
    }
  }
  return count === 0 ? 'none' : count === order.length ? 'all' : 'some';
}

// -- windowing ----------------------------------------------------------------------------------

export interface IWindow {
  /** First row rendered (inclusive) and last (exclusive). */
  start: number;
  end: number;
  /** Pixels above the first row rendered (the spacer's height). */
  offset: number;
  /** Height of every row together. */
  total: number;
}

/** Where each row starts: `offsets[i]` pixels from the top; one more entry for the end. */
export function rowOffsets(heights: readonly number[]): number[] {
  const offsets = new Array<number>(heights.length + 1);
  offsets[0] = 0;
  for (let i = 0; i < heights.length; i++) {
    offsets[i + 1] = offsets[i] + heights[i];
  }
  return offsets;
}

/** The last index whose offset is at or above `y` (binary search). */
function rowAt(offsets: readonly number[], y: number): number {
  let lo = 0;
  let hi = offsets.length - 2;
  if (hi < 0) {
    return 0;
  }
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offsets[mid] <= y) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

/**
 * The rows a viewport of `height` pixels scrolled to `scrollTop` shows, with `overscan`
 * rows more on each side so that scrolling does not show blanks.
 */
export function windowRange(
  offsets: readonly number[],
  scrollTop: number,
  height: number,
  overscan = 8
): IWindow {
  const count = offsets.length - 1;
  const total = count > 0 ? offsets[count] : 0;
  if (count <= 0) {
    return { start: 0, end: 0, offset: 0, total: 0 };
  }
  const top = Math.max(0, Math.min(scrollTop, Math.max(0, total - height)));
  const first = rowAt(offsets, top);
  const last = rowAt(offsets, top + Math.max(height, 1) - 1);
  const start = Math.max(0, first - overscan);
  const end = Math.min(count, last + 1 + overscan);
  return { start, end, offset: offsets[start], total };
}

/** The scrollTop that brings row `index` into a viewport of `height`, or null if it is shown. */
export function scrollToShow(
  offsets: readonly number[],
  index: number,
  scrollTop: number,
  height: number
): number | null {
  if (index < 0 || index >= offsets.length - 1) {
    return null;
  }
  const top = offsets[index];
  const bottom = offsets[index + 1];
  if (top < scrollTop) {
    return top;
  }
  if (bottom > scrollTop + height) {
    return bottom - height;
  }
  return null;
}

// -- durations and progress --------------------------------------------------------------------

/**
 * How long a workload ran: from its start (its launch if it never started) to its end once
 * it ended, to `now` while it runs or waits; null when a finished record says no end.
 */
export function durationOf(w: IWorkload, now: number): number | null {
  const from = w.started ?? w.created;
  if (isFinal(w.status)) {
    if (typeof w.ended === 'number') {
      return Math.max(0, w.ended - from);
    }
    const given = (w as { duration_seconds?: unknown }).duration_seconds;
    return typeof given === 'number' && Number.isFinite(given) ? Math.max(0, given) : null;
  }
  return Math.max(0, now - from);
}

/** "0.4s", "42s", "5m 3s", "1h 20m", "3d 4h"; "—" when unknown. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) {
    return '—';
  }
  if (seconds < 10 && seconds >= 0.1 && seconds !== Math.floor(seconds)) {
    return `${(Math.floor(seconds * 10) / 10).toFixed(1)}s`;
  }
  const s = Math.max(0, Math.floor(seconds));
  if (s < 86400) {
    return formatRunTime(s); // whole seconds: "42s", "5m 3s", "1h 20m"
  }
  const h = Math.floor(s / 3600);
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d ${h % 24}h` : `${d}d`;
}

/** What the duration column says about itself (its tooltip). */
export function durationTitle(w: IWorkload): string {
  if (w.status === 'pending') {
    return 'waiting since launch';
  }
  return isFinal(w.status) ? 'ran for (start to end)' : 'running for';
}

export interface IProgressView {
  done: number;
  total: number;
  /** 0–100. */
  percent: number;
  label: string;
}

/** A record's `progress` (`{done, total, label}`), read defensively; null when absent. */
export function progressOf(w: IWorkload): IProgressView | null {
  const raw = (w as { progress?: unknown }).progress;
  if (typeof raw !== 'object' || raw === null) {
    return null;
  }
  const { done, total, label } = raw as { done?: unknown; total?: unknown; label?: unknown };
  if (typeof done !== 'number' || typeof total !== 'number' || !(total > 0) || !(done >= 0)) {
    return null;
  }
  const clamped = Math.min(done, total);
  return {
    done: clamped,
    total,
    percent: Math.round((clamped / total) * 100),
    label: typeof label === 'string' && label ? label : `${clamped} of ${total}`
  };
}

/** Status changes between two views of the list, for the live region ("x is now failed"). */
export function statusChanges(
  before: ReadonlyMap<string, Status>,
  after: Iterable<IWorkload>
): string[] {
  const out: string[] = [];
  for (const w of after) {
    const held = before.get(w.name);
    if (held !== undefined && held !== w.status) {
      out.push(`${w.name} is now ${w.status}`);
    }
  }
  return out;
}
