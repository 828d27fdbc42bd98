import {
  ageOf,
  dashboardLink,
  effectiveSpec,
  formatAge,
  formatResources,
  isActive,
  isFinal,
  kindLabel,
  kindNoun,
  mlflowRun,
  resourceSummary,
  statusLabel
} from '../format';
import { workload } from './fixtures';

describe('formatAge', () => {
  it.each([
    [0, '0s'],
    [59.9, '59s'],
    [60, '1m'],
    [3599, '59m'],
    [3600, '1h'],
    [3600 + 20 * 60, '1h20m'],
    [86400, '1d'],
    [3 * 86400 + 4 * 3600 + 59, '3d4h']
  ])('%p seconds is %p', (seconds, text) => {
    expect(formatAge(seconds)).toBe(text);
  });

  it('clamps clock skew to zero and shows unknown ages as a dash', () => {
    expect(formatAge(-3)).toBe('0s');
    expect(formatAge(Number.NaN)).toBe('-');
  });

  it('measures age from creation', () => {
    expect(ageOf(workload('a', { created: 1000 }), 1090)).toBe(90);
    expect(formatAge(ageOf(workload('a', { created: 1000 }), 1000 + 7200))).toBe('2h');
  });
});

describe('resource summary', () => {
  it('lists cpu, memory and GPUs with their type', () => {
    expect(
      formatResources({ cpu: '2', memory: '4Gi', gpus: 1, gpu_type: 'NVIDIA-A100-SXM4-80GB' })
    ).toBe('2 CPU · 4Gi · 1 GPU (NVIDIA-A100-SXM4-80GB)');
    expect(formatResources({ cpu: '500m', gpus: 0 })).toBe('500m CPU');
    expect(formatResources({ memory: '512Mi', gpus: 2 })).toBe('512Mi · 2 GPU');
    expect(formatResources(null)).toBe('');
  });

  it('says "default" when nothing was asked for', () => {
    expect(resourceSummary({ kind: 'pod' })).toBe('—');
    expect(resourceSummary({ kind: 'pod', resources: { gpus: 0 } })).toBe('—');
    expect(resourceSummary(undefined)).toBe('—');
  });

  it('multiplies by the workers of a Dask cluster', () => {
    expect(
      resourceSummary({ kind: 'dask', workers: 3, resources: { cpu: '1', memory: '2Gi' } })
    ).toBe('3 workers × 1 CPU · 2Gi');
    expect(resourceSummary({ kind: 'dask', workers: 1 })).toBe('1 worker');
    expect(resourceSummary({ kind: 'dask', workers: 2, adapt: { minimum: 1, maximum: 8 } })).toBe(
      '1–8 workers'
    );
  });

  it('multiplies by nodes and processes of a training job', () => {
    expect(
      resourceSummary({ kind: 'train', nodes: 2, procs_per_node: 4, resources: { gpus: 4 } })
    ).toBe('2 nodes × 4 procs × 4 GPU');
    expect(
      resourceSummary({ kind: 'train', nodes: 1, procs_per_node: 1, resources: { cpu: '8' } })
    ).toBe('8 CPU');
  });
});

describe('effectiveSpec', () => {
  const cluster = workload('d', {
    kind: 'dask',
    spec: { kind: 'dask', workers: 2, resources: { cpu: '1' } }
  });

  it('shows a Dask cluster at the size it was last scaled to', () => {
    const scaled = { ...cluster, info: { address: 'tcp://x', requested_workers: 5, adapt: null } };
    expect(resourceSummary(effectiveSpec(scaled))).toBe('5 workers × 1 CPU');
  });

  it('shows adaptive bounds set after launch', () => {
    const adaptive = { ...cluster, info: { requested_workers: 5, adapt: [1, 4] } };
    expect(resourceSummary(effectiveSpec(adaptive))).toBe('1–4 workers × 1 CPU');
  });

  it('keeps the launch spec when nothing changed, and for other kinds', () => {
    expect(effectiveSpec(cluster)).toBe(cluster.spec);
    const pod = workload('p', { info: { requested_workers: 3 } });
    expect(effectiveSpec(pod)).toBe(pod.spec);
  });
});

describe('labels', () => {
  it('names kinds in singular and plural', () => {
    expect(kindLabel('dask')).toBe('Dask cluster');
    expect(kindLabel('train', true)).toBe('Training jobs');
    expect(kindLabel('notebook', true)).toBe('Notebook runs');
    expect([kindNoun('pod'), kindNoun('dask'), kindNoun('train')]).toEqual([
      'pod',
      'Dask cluster',
      'training job'
    ]);
  });

  it('adds the exit code to a failed status', () => {
    expect(statusLabel(workload('a', { status: 'failed', exit_code: 3 }))).toBe('failed (3)');
    expect(statusLabel(workload('a', { status: 'failed', exit_code: null }))).toBe('failed');
    expect(statusLabel(workload('a', { status: 'succeeded', exit_code: 0 }))).toBe('succeeded');
  });

  it('tells active from final statuses', () => {
    expect(['pending', 'running'].map(s => isActive(s as 'pending'))).toEqual([true, true]);
    expect(['succeeded', 'failed', 'cancelled'].map(s => isFinal(s as 'failed'))).toEqual([
      true,
      true,
      true
    ]);
    expect(isFinal('running')).toBe(false);
  });

  it("links a tracked workload's MLflow run only through an http(s) page", () => {
    const url = 'http://mlflow.example.org/#/experiments/1/runs/abc';
    expect(mlflowRun(workload('p', { info: { mlflow: { run_id: 'abc', url } } }))).toEqual({
      runId: 'abc',
      url,
      parentRunId: null
    });
    const sweepPoint = { run_id: 'c1', url: null, parent_run_id: 'p1' };
    expect(mlflowRun(workload('p', { info: { mlflow: sweepPoint } }))).toEqual({
      runId: 'c1',
      url: null,
      parentRunId: 'p1'
    });
    const hostile = { run_id: 'x', url: 'javascript:alert(1)' };
    expect(mlflowRun(workload('p', { info: { mlflow: hostile } }))?.url).toBeNull();
    expect(mlflowRun(workload('p', { info: { mlflow: { url } } }))).toBeNull();
    expect(mlflowRun(workload('p', {}))).toBeNull();
  });

  it('finds a Dask dashboard link on the record or in its info', () => {
    expect(
      dashboardLink(workload('d', { kind: 'dask', dashboard_url: 'http://h:8787/status' }))
    ).toBe('http://h:8787/status');
    expect(
      dashboardLink(workload('d', { kind: 'dask', info: { dashboard: '/proxy/8787/status' } }))
    ).toBe('/proxy/8787/status');
    expect(dashboardLink(workload('d', { kind: 'dask' }))).toBeNull();
  });

  it('prefers the dashboard through the Jupyter server, under its base URL', () => {
    const info = { dashboard: 'http://127.0.0.1:8787/status', dashboard_path: 'proxy/8787/status' };
    const cluster = workload('d', { kind: 'dask', info });
    expect(dashboardLink(cluster, 'http://lab.example/user/ana/')).toBe(
      'http://lab.example/user/ana/proxy/8787/status'
    );
    expect(dashboardLink(cluster, '/base')).toBe('/base/proxy/8787/status');
    expect(dashboardLink(cluster)).toBe('/proxy/8787/status');
  });
});
