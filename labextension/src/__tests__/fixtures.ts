import type { IWorkload, IWorkloadEvent, Kind, Status } from '../types';

/** A record as `GET workloads` answers, with the fields a test cares about overridden. */
export function workload(name: string, overrides: Partial<IWorkload> = {}): IWorkload {
  const kind: Kind = overrides.kind ?? 'pod';
  return {
    id: name,
    name,
    kind,
    backend: 'local',
    status: 'running',
    message: '',
    exit_code: null,
    created: 1000,
    started: 1001,
    ended: null,
    age: 5,
    gpus: [],
    owner: 'me',
    session: null,
    run_dir: `/runs/${name}`,
    spec: { kind, resources: { cpu: '1' } },
    ...overrides
  };
}

/** A server event's data. */
export function event(
  action: IWorkloadEvent['action'],
  name: string,
  status: Status,
  overrides: Partial<IWorkloadEvent> = {}
): IWorkloadEvent {
  return {
    action,
    name,
    kind: 'pod',
    backend: 'local',
    status,
    message: '',
    exit_code: null,
    ...overrides
  };
}
