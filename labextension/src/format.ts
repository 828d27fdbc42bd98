/**
 * Pure formatting of workload records for display: ages, resources, labels.
 */
import type { IResources, ISpec, IWorkload, Kind, Status } from './types';

const KIND_LABELS: { [K in Kind]: [string, string, string] } = {
  pod: ['Pod', 'Pods', 'pod'],
  dask: ['Dask cluster', 'Dask clusters', 'Dask cluster'],
  train: ['Training job', 'Training jobs', 'training job'],
  notebook: ['Notebook run', 'Notebook runs', 'notebook run'],
  serve: ['Model endpoint', 'Model endpoints', 'model endpoint']
};

/** "Pod" / "Pods", "Dask cluster" / "Dask clusters", … */
export function kindLabel(kind: Kind, plural = false): string {
  const labels = KIND_LABELS[kind];
  return labels ? labels[plural ? 1 : 0] : kind;
}

/** The kind inside a sentence: "pod", "Dask cluster", "training job". */
export function kindNoun(kind: Kind): string {
  const labels = KIND_LABELS[kind];
  return labels ? labels[2] : kind;
}

/** The launch menu's entry for a kind: "Pod", …, "Serve a model…". */
export function launchLabel(kind: Kind): string {
  return kind === 'serve' ? 'Serve a model…' : kindLabel(kind);
}

/** The launch dialog's title: "Launch pod", …, "Serve a model". */
export function launchTitle(kind: Kind): string {
  return kind === 'serve' ? 'Serve a model' : `Launch ${kindNoun(kind)}`;
}

export function isFinal(status: Status): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}

export function isActive(status: Status): boolean {
  return status === 'pending' || status === 'running';
}

/**
 * A compact age like kubectl prints: 42s, 5m, 1h20m, 3d4h; "-" when unknown.
 */
export function formatAge(seconds: number): string {
  if (!Number.isFinite(seconds)) {
    return '-';
  }
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) {
    return `${s}s`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m}m`;
  }
  const h = Math.floor(m / 60);
  if (h < 24) {
    return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  }
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d${h % 24}h` : `${d}d`;
}

/** Seconds since the workload was created, as of `now` (epoch seconds). */
export function ageOf(workload: IWorkload, now: number): number {
  return Math.max(0, now - workload.created);
}

/** "2 CPU · 4Gi · 1 GPU (A100)"; "" when nothing was asked for. */
export function formatResources(resources: IResources | null | undefined): string {
  if (!resources) {
    return '';
  }
  const parts: string[] = [];
  if (resources.cpu) {
    parts.push(`${resources.cpu} CPU`);
  }
  if (resources.memory) {
    parts.push(resources.memory);
  }
  const gpus = resources.gpus ?? 0;
  if (gpus > 0) {
    const type = resources.gpu_type ? ` (${resources.gpu_type})` : '';
    parts.push(`${gpus} GPU${type}`);
  }
  return parts.join(' · ');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** How many copies the resources apply to: workers of a cluster, nodes × procs of a job. */
export function formatScale(spec: ISpec): string {
  switch (spec.kind) {
    case 'dask':
      if (spec.adapt) {
        return `${spec.adapt.minimum}–${spec.adapt.maximum} workers`;
      }
      return spec.workers ? plural(spec.workers, 'worker') : '';
    case 'train':
      if ((spec.nodes ?? 1) > 1 || (spec.procs_per_node ?? 1) > 1) {
        return `${plural(spec.nodes ?? 1, 'node')} × ${plural(spec.procs_per_node ?? 1, 'proc')}`;
      }
      return '';
    default:
      return '';
  }
}

/** The one-line resource column: "3 workers × 1 CPU · 2Gi", "—" when unset. */
export function resourceSummary(spec: ISpec | null | undefined): string {
  if (!spec) {
    return '—';
  }
  const each = formatResources(spec.resources);
  const scale = formatScale(spec);
  if (scale && each) {
    return `${scale} × ${each}`;
  }
  return scale || each || '—';
}

/**
 * The spec with a Dask cluster's current size: `scale` and `adapt` after launch are
 * recorded in the record's info (`requested_workers`, `adapt: [min, max]`), not its spec.
 */
export function effectiveSpec(workload: IWorkload): ISpec {
  const info = workload.info ?? {};
  if (workload.kind !== 'dask') {
    return workload.spec;
  }
  const adapt = info['adapt'];
  if (Array.isArray(adapt) && adapt.length === 2) {
    return { ...workload.spec, adapt: { minimum: Number(adapt[0]), maximum: Number(adapt[1]) } };
  }
  const requested = info['requested_workers'];
  if (typeof requested === 'number') {
    return { ...workload.spec, workers: requested, adapt: null };
  }
  return workload.spec;
}

/** The status badge text: the status, with the exit code when a run failed with one. */
export function statusLabel(workload: IWorkload): string {
  if (
    workload.status === 'failed' &&
    workload.exit_code !== null &&
    workload.exit_code !== undefined
  ) {
    return `failed (${workload.exit_code})`;
  }
  return workload.status;
}

/**
 * A Dask dashboard address from the record, when the server put one there: an absolute
 * `dashboard_url`, else `info.dashboard_path` (through the Jupyter server, relative to its
 * base URL, jupyter-server-proxy), else the scheduler's own `info.dashboard` address.
 */
/** A tracked workload's MLflow run (`info.mlflow`): its id, its page when that is an http(s) URL, its parent run. */
export interface IMlflowRun {
  runId: string;
  url: string | null;
  parentRunId: string | null;
}

export function mlflowRun(workload: IWorkload): IMlflowRun | null {
  const tracked = (workload.info ?? {})['mlflow'];
  if (!tracked || typeof tracked !== 'object') {
    return null;
  }
  const run = tracked as { [key: string]: unknown };
  if (typeof run['run_id'] !== 'string' || !run['run_id']) {
    return null;
  }
  const url =
    typeof run['url'] === 'string' && /^https?:\/\//i.test(run['url']) ? run['url'] : null;
  const parent = typeof run['parent_run_id'] === 'string' ? run['parent_run_id'] : null;
  return { runId: run['run_id'], url, parentRunId: parent };
}

export function dashboardLink(workload: IWorkload, baseUrl = '/'): string | null {
  if (workload.dashboard_url) {
    return workload.dashboard_url;
  }
  const info = workload.info ?? {};
  const path = info['dashboard_path'];
  if (typeof path === 'string' && path) {
    return baseUrl.replace(/\/?$/, '/') + path.replace(/^\//, '');
  }
  for (const key of ['dashboard_url', 'dashboard']) {
    const value = info[key];
    if (typeof value === 'string' && value) {
      return value;
    }
  }
  return null;
}

/**
 * A Dask cluster's own dashboard plots: the bokeh documents `distributed` serves next to the
 * dashboard's `/status` page, framed in Lab tabs (see dask.ts).
 */
export interface IDaskPlot {
  id: string;
  label: string;
  /** The bokeh document's path on the dashboard. */
  path: string;
}

export const DASK_PLOTS: readonly IDaskPlot[] = [
  { id: 'task-stream', label: 'Task stream', path: 'individual-task-stream' },
  { id: 'progress', label: 'Progress', path: 'individual-progress' },
  { id: 'workers-memory', label: 'Workers memory', path: 'individual-workers-memory' }
];

export function daskPlot(id: unknown): IDaskPlot | undefined {
  return DASK_PLOTS.find(plot => plot.id === id);
}

/** The dashboard's root: its address without the page (`/status`) or a trailing slash. */
export function dashboardRoot(link: string): string {
  return link.replace(/[?#].*$/, '').replace(/\/(status\/?)?$/, '');
}

/**
 * Where one plot of a running cluster's dashboard is; null without a dashboard or with an
 * address the page must not frame (only http(s) URLs and paths on this server).
 */
export function daskPlotLink(workload: IWorkload, plot: IDaskPlot, baseUrl = '/'): string | null {
  if (workload.kind !== 'dask' || workload.status !== 'running') {
    return null;
  }
  const link = dashboardLink(workload, baseUrl);
  if (!link || !(/^https?:\/\/[^\s]+$/i.test(link) || /^\/[^\s/][^\s]*$/.test(link))) {
    return null;
  }
  return `${dashboardRoot(link)}/${plot.path}`;
}

/** What a serve row shows, read defensively from the record's info (the router writes it). */
export interface IEndpointView {
  /** The endpoint's address when it is an http(s) URL, else null. */
  url: string | null;
  revision: number | null;
  /** The revision taking a share of the traffic while another has the rest. */
  canary: number | null;
  /** Percent of the requests the canary gets. */
  canaryPercent: number | null;
  ready: number | null;
  /** Replicas wanted, all revisions together (a canary's included). */
  desired: number | null;
  /** Replicas wanted per revision: the serving revision's count (what scaling sets). */
  replicas: number | null;
  rps: number | null;
  phase: string | null;
  message: string;
}

function count(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : null;
}

/** Only links the page may open: http or https, never javascript: and the like. */
export function safeURL(value: unknown): string | null {
  if (typeof value !== 'string' || !/^https?:\/\/[^\s]+$/i.test(value)) {
    return null;
  }
  return value;
}

/** The endpoint fields of a serve workload's info; null for other kinds. */
export function endpointView(workload: IWorkload): IEndpointView | null {
  if (workload.kind !== 'serve') {
    return null;
  }
  const info = workload.info ?? {};
  const traffic = info['traffic'];
  const canary = count(info['canary']) || null;
  let canaryPercent: number | null = null;
  if (canary !== null && typeof traffic === 'object' && traffic !== null) {
    canaryPercent = count((traffic as { [key: string]: unknown })[String(canary)]);
  }
  const revision = count(info['revision']);
  const revisions = Array.isArray(info['revisions']) ? (info['revisions'] as unknown[]) : [];
  const serving = revisions.find(
    r => typeof r === 'object' && r !== null && (r as { revision?: unknown }).revision === revision
  ) as { desired?: unknown } | undefined;
  const rollout = info['rollout'];
  const state =
    typeof rollout === 'object' && rollout !== null ? (rollout as { [key: string]: unknown }) : {};
  return {
    url: safeURL(info['url']),
    revision,
    canary,
    canaryPercent,
    ready: count(info['ready']),
    desired: count(info['desired']),
    replicas: count(serving?.desired) ?? count(info['desired']),
    rps: count(info['rps']),
    phase: typeof state['phase'] === 'string' ? state['phase'] : null,
    message: typeof state['message'] === 'string' ? state['message'] : ''
  };
}

/** "revision 2", "revision 2 · canary 3 at 20%"; "" before the first revision serves. */
export function formatRevision(view: IEndpointView): string {
  if (view.revision === null) {
    return '';
  }
  const text = `revision ${view.revision}`;
  if (view.canary === null) {
    return text;
  }
  const share = view.canaryPercent === null ? '' : ` at ${view.canaryPercent}%`;
  return `${text} · canary ${view.canary}${share}`;
}

/** "1/2 ready"; "" when the router has not said yet. */
export function formatReplicas(view: IEndpointView): string {
  if (view.ready === null || view.desired === null) {
    return '';
  }
  return `${view.ready}/${view.desired} ready`;
}

/** Requests per second: "0 req/s", "2.5 req/s", "37 req/s", "1.2k req/s". */
export function formatRate(rps: number | null): string {
  if (rps === null) {
    return '';
  }
  if (rps >= 1000) {
    return `${(rps / 1000).toFixed(1)}k req/s`;
  }
  if (rps >= 10) {
    return `${Math.round(rps)} req/s`;
  }
  const rounded = Math.round(rps * 10) / 10;
  return `${rounded} req/s`;
}

/** "rolling out", "rollout failed" while the endpoint's latest change is not complete. */
export function rolloutLabel(view: IEndpointView): string {
  if (view.phase === 'progressing') {
    return 'rolling out';
  }
  return view.phase === 'failed' ? 'rollout failed' : '';
}
