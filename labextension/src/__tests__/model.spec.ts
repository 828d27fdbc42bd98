import {
  compareWorkloads,
  type ITransition,
  mergeWorkload,
  shouldNotify,
  WorkloadModel
} from '../model';
import { event, workload } from './fixtures';

function modelAt(now: number): {
  model: WorkloadModel;
  finished: ITransition[];
  changes: () => number;
} {
  const model = new WorkloadModel({ now: () => now });
  const finished: ITransition[] = [];
  let changes = 0;
  model.finished.connect((_, t) => finished.push(t));
  model.changed.connect(() => changes++);
  return { model, finished, changes: () => changes };
}

describe('WorkloadModel listing', () => {
  it('holds a listing keyed by name, newest first', () => {
    const { model } = modelAt(2000);
    model.replaceAll([
      workload('old', { created: 100 }),
      workload('new', { created: 300 }),
      workload('mid', { created: 200 })
    ]);
    expect(model.size).toBe(3);
    expect(model.list().map(w => w.name)).toEqual(['new', 'mid', 'old']);
    expect(model.get('mid')?.created).toBe(200);
  });

  it('breaks ties on creation time by name so the order is stable', () => {
    const a = workload('a', { created: 5 });
    const b = workload('b', { created: 5 });
    expect([b, a].sort(compareWorkloads).map(w => w.name)).toEqual(['a', 'b']);
    expect(compareWorkloads(a, a)).toBe(0);
  });

  it('drops records a new listing no longer has', () => {
    const { model } = modelAt(0);
    model.replaceAll([workload('a'), workload('b')]);
    model.replaceAll([workload('b')]);
    expect(model.has('a')).toBe(false);
    expect(model.list().map(w => w.name)).toEqual(['b']);
  });

  it('filters by kind and by status', () => {
    const { model } = modelAt(0);
    model.replaceAll([
      workload('p1', { kind: 'pod', status: 'running', created: 1 }),
      workload('d1', { kind: 'dask', status: 'running', created: 2 }),
      workload('t1', { kind: 'train', status: 'failed', created: 3 }),
      workload('p2', { kind: 'pod', status: 'succeeded', created: 4 })
    ]);
    expect(model.list({ kinds: ['pod'] }).map(w => w.name)).toEqual(['p2', 'p1']);
    expect(model.list({ kinds: ['dask', 'train'] }).map(w => w.name)).toEqual(['t1', 'd1']);
    expect(model.list({ statuses: ['running'] }).map(w => w.name)).toEqual(['d1', 'p1']);
    expect(model.list({ kinds: ['pod'], statuses: ['running'] }).map(w => w.name)).toEqual(['p1']);
    expect(model.list({ kinds: [] })).toEqual([]);
  });

  it('gives one section per requested kind, in that order, empty ones included', () => {
    const { model } = modelAt(0);
    model.replaceAll([workload('p1'), workload('n1', { kind: 'notebook' })]);
    const sections = model.sections(['notebook', 'dask', 'pod']);
    expect(sections.map(s => [s.kind, s.workloads.map(w => w.name)])).toEqual([
      ['notebook', ['n1']],
      ['dask', []],
      ['pod', ['p1']]
    ]);
  });
});

describe('WorkloadModel events', () => {
  it('adds a placeholder for an unknown workload and asks for the full record', () => {
    const { model, changes } = modelAt(1234);
    const result = model.applyEvent(
      event('added', 'cli-run', 'pending', { kind: 'train', backend: 'kubernetes' })
    );
    expect(result.refetch).toBe(true);
    const held = model.get('cli-run');
    expect(held).toMatchObject({
      name: 'cli-run',
      kind: 'train',
      backend: 'kubernetes',
      status: 'pending',
      created: 1234,
      spec: { kind: 'train' }
    });
    expect(changes()).toBe(1);
  });

  it('updates status, message and exit code on "changed", keeping the rest', () => {
    const { model } = modelAt(0);
    model.replaceAll([workload('a', { spec: { kind: 'pod', resources: { cpu: '2' } } })]);
    model.applyEvent(event('changed', 'a', 'failed', { message: 'OOMKilled', exit_code: 137 }));
    expect(model.get('a')).toMatchObject({
      status: 'failed',
      message: 'OOMKilled',
      exit_code: 137,
      spec: { resources: { cpu: '2' } },
      run_dir: '/runs/a'
    });
  });

  it('forgets a workload on "removed" without asking for it again', () => {
    const { model } = modelAt(0);
    model.replaceAll([workload('a'), workload('b')]);
    expect(model.applyEvent(event('removed', 'a', 'succeeded')).refetch).toBe(false);
    expect(model.list().map(w => w.name)).toEqual(['b']);
  });

  it('ignores a late fetched record for a workload removed meanwhile', () => {
    const { model } = modelAt(0);
    model.applyEvent(event('added', 'a', 'pending'));
    model.applyEvent(event('removed', 'a', 'cancelled'));
    model.upsert(workload('a', { status: 'running' }), { onlyIfKnown: true });
    expect(model.has('a')).toBe(false);
  });

  it('never lets a stale active record undo a final status', () => {
    const { model } = modelAt(0);
    model.replaceAll([workload('a', { status: 'running' })]);
    model.applyEvent(event('changed', 'a', 'succeeded', { exit_code: 0 }));
    // a GET that was answered before the run finished arrives last
    model.upsert(workload('a', { status: 'running', started: 1001, gpus: ['0'] }), {
      onlyIfKnown: true
    });
    expect(model.get('a')).toMatchObject({ status: 'succeeded', exit_code: 0, gpus: ['0'] });
    // a duplicate "changed running" event is ignored the same way
    model.applyEvent(event('changed', 'a', 'running'));
    expect(model.get('a')?.status).toBe('succeeded');
  });

  it('merges a fetched record over the placeholder', () => {
    const held = workload('a', { status: 'pending', created: 10, run_dir: '' });
    const merged = mergeWorkload(
      held,
      workload('a', { status: 'running', created: 9, run_dir: '/r/a' })
    );
    expect(merged).toMatchObject({ status: 'running', created: 9, run_dir: '/r/a' });
  });
});

describe('WorkloadModel finished transitions', () => {
  it('reports each workload once as it reaches a final status', () => {
    const { model, finished } = modelAt(1050);
    model.replaceAll([workload('a', { status: 'pending' })]);
    model.applyEvent(event('changed', 'a', 'running'));
    model.applyEvent(event('changed', 'a', 'failed', { message: 'exit 1', exit_code: 1 }));
    model.upsert(workload('a', { status: 'failed', exit_code: 1 }));
    expect(finished).toEqual([
      {
        name: 'a',
        kind: 'pod',
        from: 'running',
        to: 'failed',
        message: 'exit 1',
        exitCode: 1,
        launchedHere: false,
        created: 1000,
        started: 1001,
        ended: 1050 // the event carries no end time: when the page learnt of it
      }
    ]);
  });

  it('takes the end time from the record when it has one', () => {
    const { model, finished } = modelAt(5000);
    model.replaceAll([workload('b', { status: 'running', started: null })]);
    model.upsert(workload('b', { status: 'cancelled', started: null, ended: 1040 }));
    expect(finished.map(t => [t.created, t.started, t.ended])).toEqual([[1000, null, 1040]]);
  });

  it('does not report workloads first seen already finished', () => {
    const { model, finished } = modelAt(0);
    model.replaceAll([workload('done', { status: 'succeeded' })]);
    model.applyEvent(event('changed', 'late', 'cancelled'));
    expect(finished).toEqual([]);
  });

  it('reports a finish found by a new listing', () => {
    const { model, finished } = modelAt(0);
    model.replaceAll([workload('a', { status: 'running' })]);
    model.replaceAll([workload('a', { status: 'cancelled' })]);
    expect(finished.map(t => [t.name, t.from, t.to])).toEqual([['a', 'running', 'cancelled']]);
  });

  it('marks workloads launched from this page', () => {
    const { model, finished } = modelAt(0);
    model.upsert(workload('mine', { status: 'pending' }));
    model.markLaunched('mine');
    model.applyEvent(event('changed', 'mine', 'succeeded'));
    expect(model.isLaunchedHere('mine')).toBe(true);
    expect(finished.map(t => [t.name, t.launchedHere])).toEqual([['mine', true]]);
  });

  it('reports again as ours a workload that finished before its launch request answered', () => {
    const { model, finished } = modelAt(0);
    model.applyEvent(event('added', 'quick', 'running'));
    model.applyEvent(event('changed', 'quick', 'succeeded'));
    model.markLaunched('quick');
    expect(finished.map(t => [t.name, t.launchedHere])).toEqual([
      ['quick', false],
      ['quick', true]
    ]);
    model.markLaunched('quick');
    expect(finished).toHaveLength(2);
  });

  it('notifies according to the setting', () => {
    const mine: ITransition = {
      name: 'a',
      kind: 'pod',
      from: 'running',
      to: 'failed',
      message: '',
      exitCode: 1,
      launchedHere: true,
      created: 1000,
      started: 1010,
      ended: 1100
    };
    const theirs = { ...mine, launchedHere: false };
    expect([
      shouldNotify(mine, 'off'),
      shouldNotify(mine, 'mine'),
      shouldNotify(mine, 'all')
    ]).toEqual([false, true, true]);
    expect([
      shouldNotify(theirs, 'off'),
      shouldNotify(theirs, 'mine'),
      shouldNotify(theirs, 'all')
    ]).toEqual([false, false, true]);
  });
});
