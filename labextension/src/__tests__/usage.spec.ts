/**
 * Resource usage on the page: figures, sparkline paths, and the tracker that follows only
 * what is shown, asking the server for what is new since its last sample.
 */
import { daskPlot, daskPlotLink, dashboardRoot, DASK_PLOTS } from '../format';
import { WorkloadModel } from '../model';
import type { IUsageReport, IUsageSample } from '../types';
import {
  formatBytes,
  formatCores,
  formatDuration,
  MAX_SAMPLES,
  mergeSamples,
  niceCeiling,
  sparkPath,
  UsageTracker
} from '../usage';
import { workload } from './fixtures';

function sample(t: number, cpu = 100, rss = 2 ** 20): IUsageSample {
  return {
    t,
    cpu_seconds: t,
    cpu_percent: cpu,
    rss_bytes: rss,
    threads: 2,
    gpu_util: null,
    gpu_memory_bytes: null
  };
}

describe('usage figures', () => {
  it('writes bytes and cores as the CLI does', () => {
    expect([0, 900, 1024, 1536, 312 * 2 ** 20, 2 ** 30, 1.25 * 2 ** 40].map(formatBytes)).toEqual([
      '0',
      '900',
      '1Ki',
      '1.5Ki',
      '312Mi',
      '1Gi',
      '1.3Ti'
    ]);
    expect(formatBytes(null)).toBe('-');
    expect([5, 98, 240, 1600, -3].map(formatCores)).toEqual(['0.05', '0.98', '2.4', '16', '0.00']);
    expect(formatCores(undefined)).toBe('-');
    expect([0, 42, 65, 3600, 3725].map(formatDuration)).toEqual([
      '0s',
      '42s',
      '1m 5s',
      '1h',
      '1h 2m'
    ]);
  });

  it('draws a sparkline bottom to top, scaled to a fixed top or the largest value', () => {
    expect(sparkPath([], 48, 14)).toBe('');
    expect(sparkPath([50], 48, 14, 100)).toBe('M0,7.0H48');
    expect(sparkPath([0, 100, 50], 40, 10, 100)).toBe('M0.0,10.0L20.0,0.0L40.0,5.0');
    // above the fixed top, the largest value sets the scale; non-numbers count as 0
    expect(sparkPath([0, 200, NaN], 40, 10, 100)).toBe('M0.0,10.0L20.0,0.0L40.0,10.0');
    expect(sparkPath([0, 0], 10, 10)).toBe('M0.0,10.0L10.0,10.0');
  });

  it('rounds axis tops up to 1, 2, 2.5 or 5 times a power of ten', () => {
    expect([0, 0.7, 1, 1.2, 2.2, 3, 7, 130, 312 * 2 ** 20].map(niceCeiling)).toEqual([
      1, 1, 1, 2, 2.5, 5, 10, 200, 500000000
    ]);
  });

  it('appends only new samples and keeps the last MAX_SAMPLES', () => {
    const held = [sample(1), sample(2)];
    expect(mergeSamples(held, [sample(2), sample(3)]).map(s => s.t)).toEqual([1, 2, 3]);
    const many = Array.from({ length: MAX_SAMPLES + 5 }, (_, i) => sample(i + 10));
    const kept = mergeSamples(held, many);
    expect(kept).toHaveLength(MAX_SAMPLES);
    expect(kept[kept.length - 1].t).toBe(MAX_SAMPLES + 14);
  });
});

class FakeAPI {
  calls: [string, number | undefined][] = [];
  samples = new Map<string, IUsageSample[]>();

  async usage(name: string, since?: number): Promise<IUsageReport> {
    this.calls.push([name, since]);
    const all = this.samples.get(name);
    if (!all) {
      throw new Error('404');
    }
    const history = all.filter(s => since === undefined || s.t > since);
    const last = all[all.length - 1];
    return {
      summary: last
        ? {
            samples: all.length,
            first_t: all[0].t,
            last_t: last.t,
            cpu_seconds: last.cpu_seconds,
            cpu_percent: last.cpu_percent,
            peak_cpu_percent: Math.max(...all.map(s => s.cpu_percent)),
            avg_cpu_percent: 0,
            rss_bytes: last.rss_bytes,
            peak_rss_bytes: 0,
            avg_rss_bytes: 0,
            threads: 2,
            gpu_util: null,
            gpu_memory_bytes: null
          }
        : null,
      history,
      source: 'psutil',
      note: last ? null : 'no resource samples yet'
    };
  }
}

describe('UsageTracker', () => {
  function setup(): { api: FakeAPI; model: WorkloadModel; tracker: UsageTracker } {
    const api = new FakeAPI();
    const model = new WorkloadModel({ now: () => 2000 });
    const tracker = new UsageTracker(api, model, { periodMs: 60_000, maxRows: 2 });
    return { api, model, tracker };
  }

  it('follows the newest running rows only while they are shown, asking for what is new', async () => {
    const { api, model, tracker } = setup();
    model.replaceAll([
      workload('old', { created: 100 }),
      workload('mid', { created: 200 }),
      workload('new', { created: 300 }),
      workload('done', { created: 400, status: 'succeeded' })
    ]);
    for (const name of ['old', 'mid', 'new', 'done']) {
      api.samples.set(name, [sample(1), sample(2, 250)]);
    }
    const changed: string[] = [];
    tracker.changed.connect((_, name) => changed.push(name));

    expect(tracker.followed()).toEqual([]);
    tracker.setRowsShown(true);
    expect(tracker.followed().sort()).toEqual(['mid', 'new']); // at most maxRows, newest first
    await tracker.poll();
    expect(tracker.get('new')?.history.map(s => s.t)).toEqual([1, 2]);
    expect(tracker.summary(model.get('new')!)?.cpu_percent).toBe(250);
    expect(changed.sort()).toEqual(['mid', 'new']);

    api.samples.get('new')!.push(sample(3, 50));
    api.calls = [];
    await tracker.poll();
    expect(api.calls.sort()).toEqual([
      ['mid', 2],
      ['new', 2]
    ]);
    expect(tracker.get('new')?.history.map(s => s.t)).toEqual([1, 2, 3]);

    // hidden: nothing is followed, and the samples held are let go
    tracker.setRowsShown(false);
    await tracker.poll();
    expect(tracker.get('new')).toBeUndefined();
    tracker.dispose();
  });

  it('fetches a row that starts running at once, not at the next period', async () => {
    const { api, model, tracker } = setup();
    tracker.setRowsShown(true);
    await tracker.poll();
    api.samples.set('fresh', [sample(7)]);
    model.replaceAll([workload('fresh', { status: 'pending' })]);
    expect(api.calls).toEqual([]);
    model.upsert(workload('fresh', { status: 'running' }));
    expect(api.calls).toEqual([['fresh', undefined]]);
    await new Promise(resolve => setTimeout(resolve, 0));
    expect(tracker.get('fresh')?.history.map(s => s.t)).toEqual([7]);
    tracker.dispose();
  });

  it('follows a watched workload until unwatched, and a finished one only once more', async () => {
    const { api, model, tracker } = setup();
    model.replaceAll([workload('run', { status: 'running' })]);
    api.samples.set('run', [sample(1)]);
    const unwatch = tracker.watch('run');
    await tracker.poll();
    expect(tracker.followed()).toEqual(['run']);
    model.upsert(workload('run', { status: 'succeeded', ended: 1500 }));
    api.samples.get('run')!.push(sample(2));
    await tracker.poll();
    expect(tracker.get('run')?.history.map(s => s.t)).toEqual([1, 2]);
    expect(tracker.followed()).toEqual([]); // ended and fetched since: nothing more to ask
    unwatch();
    tracker.dispose();
  });

  it('keeps the record summary when the server has no figures, and the note', async () => {
    const { api, model, tracker } = setup();
    const record = workload('k8s', { backend: 'kubernetes' });
    model.replaceAll([record]);
    api.samples.set('k8s', []);
    expect(tracker.summary(record)).toBeNull();
    await tracker.poll(['k8s']);
    expect(tracker.get('k8s')?.note).toBe('no resource samples yet');
    await tracker.poll(['gone']); // an error answer is left for the next poll
    expect(tracker.get('gone')).toBeUndefined();
    tracker.dispose();
  });
});

describe('Dask dashboard plots', () => {
  const running = workload('dask-1', {
    kind: 'dask',
    info: { dashboard_path: 'proxy/8787/status', dashboard: 'http://127.0.0.1:8787/status' }
  });

  it('are the individual bokeh documents next to the proxied dashboard', () => {
    expect(DASK_PLOTS.map(p => p.path)).toEqual([
      'individual-task-stream',
      'individual-progress',
      'individual-workers-memory'
    ]);
    const links = DASK_PLOTS.map(plot => daskPlotLink(running, plot, '/user/me/'));
    expect(links).toEqual([
      '/user/me/proxy/8787/individual-task-stream',
      '/user/me/proxy/8787/individual-progress',
      '/user/me/proxy/8787/individual-workers-memory'
    ]);
    expect(daskPlot('progress')?.label).toBe('Progress');
    expect(daskPlot('nope')).toBeUndefined();
  });

  it('use the scheduler address when no proxy path exists, and only http(s)', () => {
    const plot = daskPlot('task-stream')!;
    const direct = workload('d', { kind: 'dask', info: { dashboard: 'http://sched:8787/status' } });
    expect(daskPlotLink(direct, plot)).toBe('http://sched:8787/individual-task-stream');
    const script = workload('e', { kind: 'dask', info: { dashboard: 'javascript:alert(1)' } });
    expect(daskPlotLink(script, plot)).toBeNull();
    expect(daskPlotLink({ ...running, status: 'cancelled' }, plot)).toBeNull();
    expect(daskPlotLink(workload('p', { info: running.info }), plot)).toBeNull();
    expect(dashboardRoot('http://h:1/status/?x=1')).toBe('http://h:1');
    expect(dashboardRoot('/proxy/1/')).toBe('/proxy/1');
  });
});
