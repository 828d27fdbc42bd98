/**
 * The shapes the server extension speaks (`<base_url>/workbench/api/`).
 *
 * Kept free of imports so the pure state code and its tests can use them.
 */

export const KINDS = ['pod', 'dask', 'train', 'notebook', 'serve'] as const;
export type Kind = (typeof KINDS)[number];

export const STATUSES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type Status = (typeof STATUSES)[number];

/** Which finished workloads raise a notification. */
export type NotifyMode = 'off' | 'mine' | 'all';

export type BackendName = 'local' | 'kubernetes';

/** What one process (pod, worker, node) may use; `spec.resources`. */
export interface IResources {
  cpu?: string | null;
  memory?: string | null;
  gpus?: number | null;
  gpu_type?: string | null;
  shm?: string | null;
}

/** The launch spec as stored; only the fields the page reads are named. */
export interface ISpec {
  kind?: Kind;
  name?: string | null;
  image?: string | null;
  resources?: IResources | null;
  workers?: number | null;
  adapt?: { minimum: number; maximum: number } | null;
  nodes?: number | null;
  procs_per_node?: number | null;
  notebook?: string | null;
  replicas?: number | null;
  autoscale?: { minimum: number; maximum: number } | null;
  model_name?: string | null;
  model_uri?: string | null;
  [key: string]: unknown;
}

/** One workload record, as `GET workloads` answers. */
export interface IWorkload {
  id: string;
  name: string;
  kind: Kind;
  backend: BackendName | string;
  status: Status;
  message: string;
  exit_code: number | null;
  created: number;
  started: number | null;
  ended: number | null;
  age: number;
  gpus: string[];
  owner: string;
  session: string | null;
  run_dir: string;
  spec: ISpec;
  /** Set by the server for Dask clusters once their dashboard is reachable. */
  dashboard_url?: string | null;
  info?: { [key: string]: unknown } | null;
  /** Resource usage: peaks, averages, last sample; null before the first sample. */
  usage?: IUsageSummary | null;
}

/** A workload's resource usage summary (`usage` of a record); 100 percent = one core. */
export interface IUsageSummary {
  samples: number;
  first_t: number;
  last_t: number;
  cpu_seconds: number;
  cpu_percent: number;
  peak_cpu_percent: number;
  avg_cpu_percent: number;
  rss_bytes: number;
  peak_rss_bytes: number;
  avg_rss_bytes: number;
  threads: number;
  gpu_util: number | null;
  peak_gpu_util?: number | null;
  gpu_memory_bytes: number | null;
  peak_gpu_memory_bytes?: number | null;
}

/** One resource sample, over the period before `t` (epoch seconds). */
export interface IUsageSample {
  t: number;
  cpu_seconds: number;
  cpu_percent: number;
  rss_bytes: number;
  threads: number;
  gpu_util: number | null;
  gpu_memory_bytes: number | null;
}

/** `GET workloads/{name}/usage?since=`. */
export interface IUsageReport {
  summary: IUsageSummary | null;
  /** Oldest first; only the samples after `since` when it was given. */
  history: IUsageSample[];
  /** Where the figures come from ("psutil", "metrics.k8s.io"); null: no source. */
  source: string | null;
  /** Why there are no figures, when there are none. */
  note: string | null;
}

/** Where a rollout stands: `GET`/`POST workloads/{name}/rollout`. */
export interface IRolloutState {
  generation: number | null;
  phase: 'progressing' | 'complete' | 'failed';
  message: string;
  revision: number | null;
  canary: number | null;
  /** Percent of the requests per revision number. */
  traffic: { [revision: string]: number };
  ready: number;
  desired: number;
}

/** One revision of an endpoint, oldest first: `GET workloads/{name}/revisions`. */
export interface IRevision {
  revision: number;
  created: number | null;
  cause: string | null;
  model_uri?: string | null;
  image?: string | null;
  state: string;
}

/** What a rollout request asks for. */
export type RolloutRequest =
  | { change: { [field: string]: unknown } }
  | { action: 'undo'; to_revision?: number }
  | { action: 'promote' };

export type WorkloadAction = 'added' | 'changed' | 'removed';

/** The data of a `jupyter_ml_workbench/workload/v1` server event. */
export interface IWorkloadEvent {
  action: WorkloadAction;
  name: string;
  kind: Kind;
  backend: string;
  status: Status;
  message?: string | null;
  exit_code?: number | null;
}

/** The body of a 4xx answer. */
export interface IErrorBody {
  error?: string;
  message?: string;
  value?: unknown;
  hint?: string;
}

export interface IProfile {
  description?: string;
  resources?: IResources;
  image?: string;
  [key: string]: unknown;
}

export interface IBackendInfo {
  available: boolean;
  gpus?: string[];
  context?: string | null;
  namespace?: string | null;
  error?: string | null;
}

export interface IBackends {
  default: string;
  backends: { [name: string]: IBackendInfo };
}

/** A JSON Schema as pydantic v2 writes it (loosely typed on purpose). */
export interface IJSONSchema {
  [key: string]: unknown;
}
