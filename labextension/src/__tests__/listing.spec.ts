import {
  comparator,
  countByStatus,
  DEFAULT_QUERY,
  durationOf,
  formatDuration,
  type IListQuery,
  matches,
  pruneSelection,
  progressOf,
  rowOffsets,
  scrollToShow,
  selectionState,
  statusChanges,
  toggleAll,
  toggleSelection,
  visibleWorkloads,
  windowRange
} from '../listing';
import type { IWorkload, Status } from '../types';
import { workload } from './fixtures';

const q = (over: Partial<IListQuery> = {}): IListQuery => ({ ...DEFAULT_QUERY, ...over });

describe('filtering and sorting', () => {
  const all: IWorkload[] = [
    workload('train-abc', { kind: 'train', status: 'running', created: 300 }),
    workload('pod-old', { kind: 'pod', status: 'succeeded', created: 100, ended: 120 }),
    workload('nb-report', { kind: 'notebook', status: 'failed', created: 200, ended: 260 }),
    workload('dask-x', { kind: 'dask', status: 'pending', created: 400 }),
    workload('pod-new', { kind: 'pod', status: 'cancelled', created: 500, ended: 501 })
  ];

  it('shows every workload newest first by default, not grouped by kind', () => {
    expect(visibleWorkloads(all, q()).map(w => w.name)).toEqual([
      'pod-new',
      'dask-x',
      'train-abc',
      'nb-report',
      'pod-old'
    ]);
  });

  it('sorts oldest first, by name and by status', () => {
    expect(visibleWorkloads(all, q({ sort: 'oldest' })).map(w => w.name)[0]).toBe('pod-old');
    expect(visibleWorkloads(all, q({ sort: 'name' })).map(w => w.name)).toEqual([
      'dask-x',
      'nb-report',
      'pod-new',
      'pod-old',
      'train-abc'
    ]);
    expect(visibleWorkloads(all, q({ sort: 'status' })).map(w => w.status)).toEqual([
      'running',
      'pending',
      'failed',
      'cancelled',
      'succeeded'
    ]);
    const a = workload('a', { created: 5 });
    const b = workload('b', { created: 5 });
    expect([b, a].sort(comparator('newest')).map(w => w.name)).toEqual(['a', 'b']);
  });

  it('filters by status, by the active and finished groups, and by kind', () => {
    expect(visibleWorkloads(all, q({ status: 'failed' })).map(w => w.name)).toEqual(['nb-report']);
    expect(visibleWorkloads(all, q({ status: 'active' })).map(w => w.name)).toEqual([
      'dask-x',
      'train-abc'
    ]);
    expect(visibleWorkloads(all, q({ status: 'finished' }))).toHaveLength(3);
    expect(visibleWorkloads(all, q({ kind: 'pod' })).map(w => w.name)).toEqual([
      'pod-new',
      'pod-old'
    ]);
    expect(visibleWorkloads(all, q(), ['train', 'dask']).map(w => w.name)).toEqual([
      'dask-x',
      'train-abc'
    ]);
  });

  it('searches every word in the name, kind, status and backend, ignoring case', () => {
    expect(visibleWorkloads(all, q({ search: 'POD' })).map(w => w.name)).toEqual([
      'pod-new',
      'pod-old'
    ]);
    expect(visibleWorkloads(all, q({ search: 'pod succeeded' })).map(w => w.name)).toEqual([
      'pod-old'
    ]);
    expect(matches(all[0], q({ search: 'training' }))).toBe(true);
    expect(matches(all[0], q({ search: 'local' }))).toBe(true);
    expect(matches(all[0], q({ search: 'kubernetes' }))).toBe(false);
    expect(matches(all[0], q({ search: '   ' }))).toBe(true);
  });

  it('filters 1,000 workloads by status quickly', () => {
    const statuses: Status[] = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];
    const many = Array.from({ length: 1000 }, (_, i) =>
      workload(`w-${i}`, { status: statuses[i % 5], created: i })
    );
    const start = Date.now();
    const failed = visibleWorkloads(many, q({ status: 'failed' }));
    expect(Date.now() - start).toBeLessThan(200);
    expect(failed).toHaveLength(200);
    expect(failed[0].name).toBe('w-998');
    expect(countByStatus(many)).toEqual({
      pending: 200,
      running: 200,
      succeeded: 200,
      failed: 200,
      cancelled: 200
    });
  });
});

describe('selection', () => {
  const order = ['a', 'b', 'c', 'd', 'e'];

  it('toggles one row on and off', () => {
    const one = toggleSelection(new Set(), order, 'b');
    expect([...one]).toEqual(['b']);
    expect([...toggleSelection(one, order, 'b')]).toEqual([]);
  });

  it('selects a range with shift from the anchor, either direction', () => {
    expect(
      [...toggleSelection(new Set(), order, 'd', { range: true, anchor: 'b' })].sort()
    ).toEqual(['b', 'c', 'd']);
    expect(
      [...toggleSelection(new Set(['e']), order, 'a', { range: true, anchor: 'c' })].sort()
    ).toEqual(['a', 'b', 'c', 'e']);
    // no anchor: a plain toggle
    expect([...toggleSelection(new Set(), order, 'd', { range: true, anchor: null })]).toEqual([
      'd'
    ]);
  });

  it('selects all shown, then none; says all, some or none', () => {
    const all = toggleAll(new Set(['a']), order);
    expect(all.size).toBe(5);
    expect(selectionState(all, order)).toBe('all');
    expect(toggleAll(all, order).size).toBe(0);
    expect(selectionState(new Set(['a']), order)).toBe('some');
    expect(selectionState(new Set(), order)).toBe('none');
    expect(selectionState(new Set(['zz']), order)).toBe('none');
  });

  it('drops names that are no longer listed', () => {
    expect([...pruneSelection(new Set(['a', 'gone']), order)]).toEqual(['a']);
  });
});

describe('windowing', () => {
  it('renders only the rows in view plus the overscan', () => {
    const offsets = rowOffsets(new Array(1000).fill(30));
    expect(offsets[1000]).toBe(30000);
    const top = windowRange(offsets, 0, 600, 5);
    expect(top).toEqual({ start: 0, end: 25, offset: 0, total: 30000 });
    const mid = windowRange(offsets, 15000, 600, 5);
    expect(mid.start).toBe(495);
    expect(mid.end).toBe(525);
    expect(mid.offset).toBe(495 * 30);
    const bottom = windowRange(offsets, 1e9, 600, 5);
    expect(bottom.end).toBe(1000);
    expect(bottom.start).toBe(975);
  });

  it('handles rows of different heights and an empty list', () => {
    const offsets = rowOffsets([30, 70, 30, 50]);
    expect(offsets).toEqual([0, 30, 100, 130, 180]);
    expect(windowRange(offsets, 40, 30, 0)).toEqual({ start: 1, end: 2, offset: 30, total: 180 });
    expect(windowRange(offsets, 95, 40, 0)).toEqual({ start: 1, end: 4, offset: 30, total: 180 });
    expect(windowRange(offsets, 95, 30, 0)).toEqual({ start: 1, end: 3, offset: 30, total: 180 });
    expect(windowRange(rowOffsets([]), 0, 600)).toEqual({ start: 0, end: 0, offset: 0, total: 0 });
  });

  it('scrolls a row into view only when it is not', () => {
    const offsets = rowOffsets(new Array(100).fill(30));
    expect(scrollToShow(offsets, 5, 0, 600)).toBeNull();
    expect(scrollToShow(offsets, 30, 0, 600)).toBe(31 * 30 - 600);
    expect(scrollToShow(offsets, 2, 300, 600)).toBe(60);
    expect(scrollToShow(offsets, 200, 0, 600)).toBeNull();
  });
});

describe('durations and progress', () => {
  it('counts from the start while running and fixes the duration once ended', () => {
    const running = workload('r', { status: 'running', created: 100, started: 110, ended: null });
    expect(durationOf(running, 170)).toBe(60);
    const done = workload('d', { status: 'succeeded', created: 100, started: 110, ended: 115 });
    expect(durationOf(done, 10_000)).toBe(5);
    expect(durationOf(done, 20_000)).toBe(5);
    const never = workload('n', { status: 'cancelled', created: 100, started: null, ended: 103 });
    expect(durationOf(never, 9999)).toBe(3);
    const pending = workload('p', { status: 'pending', created: 100, started: null });
    expect(durationOf(pending, 130)).toBe(30);
    const unknown = workload('u', { status: 'failed', ended: null });
    expect(durationOf(unknown, 9999)).toBeNull();
    const given = { ...unknown, duration_seconds: 42 } as IWorkload;
    expect(durationOf(given, 9999)).toBe(42);
  });

  it('formats durations compactly', () => {
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(4.37)).toBe('4.3s');
    expect(formatDuration(42)).toBe('42s');
    expect(formatDuration(303)).toBe('5m 3s');
    expect(formatDuration(300)).toBe('5m');
    expect(formatDuration(4800)).toBe('1h 20m');
    expect(formatDuration(3 * 86400 + 4 * 3600)).toBe('3d 4h');
  });

  it('reads progress defensively', () => {
    expect(progressOf(workload('a'))).toBeNull();
    const p = { ...workload('b'), progress: { done: 3, total: 10, label: 'cell 3 of 10' } };
    expect(progressOf(p as IWorkload)).toEqual({
      done: 3,
      total: 10,
      percent: 30,
      label: 'cell 3 of 10'
    });
    const bad = { ...workload('c'), progress: { done: 1, total: 0 } };
    expect(progressOf(bad as IWorkload)).toBeNull();
    const over = { ...workload('d'), progress: { done: 12, total: 10, label: '' } };
    expect(progressOf(over as IWorkload)?.label).toBe('10 of 10');
  });

  it('names the status changes for the live region', () => {
    const before = new Map<string, Status>([
      ['a', 'running'],
      ['b', 'running']
    ]);
    const after = [
      workload('a', { status: 'succeeded' }),
      workload('b'),
      workload('new', { status: 'pending' })
    ];
    expect(statusChanges(before, after)).toEqual(['a is now succeeded']);
  });
});
