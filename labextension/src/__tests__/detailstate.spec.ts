import {
  clientCode,
  detailActions,
  failurePoint,
  isPaused,
  liveWorkers,
  parseAdapt,
  progressLabel,
  schedulerAddress,
  statusHistory,
  timings
} from '../detailstate';
import { workload } from './fixtures';

const none = { canClone: false, hasOutput: false };

describe('detailActions', () => {
  it('offers cancel, not re-run, while a pod runs', () => {
    const actions = detailActions(workload('p', { status: 'running' }), none);
    expect(actions).toEqual(['logs', 'cancel', 'delete']);
  });

  it('offers re-run, output and clone once a notebook run ended', () => {
    const run = workload('nb', { kind: 'notebook', status: 'failed', ended: 1010 });
    expect(detailActions(run, { canClone: true, hasOutput: true })).toEqual([
      'logs',
      'output',
      'rerun',
      'clone',
      'delete'
    ]);
  });

  it('offers scale for a running Dask cluster only', () => {
    const cluster = workload('d', { kind: 'dask', status: 'running' });
    expect(detailActions(cluster, none)).toEqual(['logs', 'cancel', 'scale', 'delete']);
    expect(detailActions({ ...cluster, status: 'cancelled' }, none)).toEqual([
      'logs',
      'rerun',
      'delete'
    ]);
  });

  it('offers rollout, undo and replicas for a running endpoint, promote only with a canary', () => {
    const endpoint = workload('m', { kind: 'serve', status: 'running', info: { revision: 1 } });
    const actions = detailActions(endpoint, none);
    expect(actions).toEqual(['logs', 'cancel', 'rollout', 'undo', 'scaleEndpoint', 'delete']);
    const canary = { ...endpoint, info: { revision: 1, canary: 2, traffic: { '2': 20 } } };
    expect(detailActions(canary, none)).toContain('promote');
  });

  it('offers pause or resume for a schedule, never cancel or re-run', () => {
    const schedule = workload('s', {
      kind: 'notebook',
      status: 'running',
      spec: { kind: 'notebook', schedule: '0 3 * * *' }
    });
    expect(detailActions(schedule, none)).toEqual(['logs', 'pause', 'delete']);
    const paused = { ...schedule, info: { schedule: { suspended: true } } };
    expect(isPaused(paused)).toBe(true);
    expect(detailActions(paused, none)).toEqual(['logs', 'resume', 'delete']);
  });
});

describe('timings', () => {
  it('measures a finished run from its start to its end, not to now', () => {
    const t = timings(workload('p', { created: 100, started: 103, ended: 108 }), 5000);
    expect(t.queuedSeconds).toBe(3);
    expect(t.durationSeconds).toBe(5);
  });

  it('counts a running one up to now', () => {
    const t = timings(workload('p', { created: 100, started: 103, ended: null }), 110);
    expect(t.durationSeconds).toBe(7);
  });
});

describe('statusHistory', () => {
  it('builds pending, running and the end from the record, with the end reason', () => {
    const failed = workload('p', {
      created: 100,
      started: 101,
      ended: 105,
      status: 'failed',
      message: 'cell 2 failed: ValueError: boom'
    });
    expect(statusHistory(failed)).toEqual([
      { status: 'pending', t: 100, message: '' },
      { status: 'running', t: 101, message: '' },
      { status: 'failed', t: 105, message: 'cell 2 failed: ValueError: boom' }
    ]);
    expect(failurePoint(failed)).toBe('cell 2');
  });

  it('keeps a status only seen by the page', () => {
    const cancelled = workload('p', { started: null, status: 'cancelled', ended: 1003 });
    const history = statusHistory(cancelled, [{ status: 'running', t: 1002, message: '' }]);
    expect(history.map(e => e.status)).toEqual(['pending', 'running', 'cancelled']);
  });
});

describe('dask details', () => {
  it('reads the scheduler address and the live worker count, tolerating their absence', () => {
    const cluster = workload('d', { kind: 'dask', info: { address: 'tcp://10.0.0.1:8786' } });
    expect(schedulerAddress(cluster)).toBe('tcp://10.0.0.1:8786');
    expect(schedulerAddress(workload('p'))).toBeNull();
    expect(liveWorkers(cluster)).toBeNull();
    expect(liveWorkers({ ...cluster, workers_live: 3 } as typeof cluster)).toBe(3);
    expect(clientCode('tcp://10.0.0.1:8786')).toBe(
      'from dask.distributed import Client; client = Client("tcp://10.0.0.1:8786")'
    );
  });

  it('parses MIN:MAX and names a bad range', () => {
    expect(parseAdapt(' 1 : 4 ')).toEqual({ minimum: 1, maximum: 4 });
    expect(parseAdapt('4:1')).toMatch(/not below the minimum/);
    expect(parseAdapt('-3')).toMatch(/two whole numbers like 1:4 \(got '-3'\)/);
  });
});

describe('failurePoint and progress', () => {
  it('names the failing rank of a training job', () => {
    const job = workload('t', { kind: 'train', status: 'failed', message: 'rank 1 failed: boom' });
    expect(failurePoint(job)).toBe('rank 1');
    expect(failurePoint({ ...job, status: 'succeeded' })).toBeNull();
  });

  it('shows the progress label when the record has one', () => {
    const run = { ...workload('nb'), progress: { done: 3, total: 10, label: 'cell 3 of 10' } };
    expect(progressLabel(run as ReturnType<typeof workload>)).toBe('cell 3 of 10');
    expect(progressLabel(workload('nb'))).toBeNull();
  });
});
