/**
 * A workload's detail view: a main-area tab with its spec, resources, timings, status history,
 * outcome, run directory and outputs, and the actions that fit its kind and state. It follows
 * the same model the sidebar does (server events), so it changes as the workload does.
 */
import { MainAreaWidget, ReactWidget } from '@jupyterlab/apputils';
import type { CommandRegistry } from '@lumino/commands';
import React, { useEffect, useReducer, useRef, useState } from 'react';

import '../style/detail.css';
import type { IScheduledRun, WorkbenchAPI } from './api';
import {
  type DetailAction,
  detailActions,
  endpointURL,
  failurePoint,
  type IHistoryEntry,
  isSchedule,
  statusHistory
} from './detailstate';
import { DaskSection } from './detaildask';
import { Field, History, Schedule, Timings } from './detailparts';
import {
  effectiveSpec,
  formatScale,
  kindLabel,
  mlflowRun,
  resourceSummary,
  statusLabel
} from './format';
import { errorMessage } from './handler';
import { workbenchIcon } from './icons';
import type { WorkloadModel } from './model';
import { drivePath, filesToTree, formatSize, type IFileNode, type IRunFiles } from './runfiles';
import type { IWorkload } from './types';

/** Command ids the view runs (kept here, not imported from commands.ts, to avoid a cycle). */
export const DETAIL_COMMANDS: { [A in DetailAction]: string } = {
  logs: 'workbench:logs',
  output: 'workbench:open-output',
  cancel: 'workbench:cancel',
  rerun: 'workbench:rerun',
  clone: 'workbench:clone',
  scale: 'workbench:scale',
  rollout: 'workbench:rollout',
  promote: 'workbench:rollout-promote',
  undo: 'workbench:rollout-undo',
  scaleEndpoint: 'workbench:scale-endpoint',
  pause: 'workbench:pause',
  resume: 'workbench:resume',
  delete: 'workbench:delete'
};

const ACTION_LABELS: { [A in DetailAction]: string } = {
  logs: 'Open logs',
  output: 'Open output notebook',
  cancel: 'Cancel',
  rerun: 'Re-run',
  clone: 'Clone…',
  scale: 'Scale…',
  rollout: 'Roll out…',
  promote: 'Promote canary',
  undo: 'Undo rollout',
  scaleEndpoint: 'Scale replicas…',
  pause: 'Pause schedule',
  resume: 'Resume schedule',
  delete: 'Delete'
};

const TICK_MS = 1000;

export interface IDetailDeps {
  api: WorkbenchAPI;
  model: WorkloadModel;
  commands: CommandRegistry;
}

function Actions(props: { workload: IWorkload; deps: IDetailDeps; hasOutput: boolean }) {
  const { workload, deps } = props;
  const actions = detailActions(workload, {
    canClone: deps.commands.hasCommand(DETAIL_COMMANDS.clone),
    hasOutput: props.hasOutput
  });
  const args = (action: DetailAction) =>
    action === 'clone'
      ? { id: workload.name }
      : action === 'cancel'
        ? { name: workload.name, confirm: true }
        : { name: workload.name };
  return (
    <div
      className="jp-WorkbenchDetail-actions"
      role="toolbar"
      aria-label={`Actions of ${workload.name}`}
    >
      {actions.map(action => (
        <button
          key={action}
          type="button"
          className={`jp-Button jp-mod-styled ${action === 'delete' || action === 'cancel' ? 'jp-mod-warn' : 'jp-mod-reject'}`}
          data-action={action}
          aria-label={`${ACTION_LABELS[action].replace(/…$/, '')} ${workload.name}`}
          onClick={() => void deps.commands.execute(DETAIL_COMMANDS[action], args(action))}
        >
          {ACTION_LABELS[action]}
        </button>
      ))}
    </div>
  );
}

function FileTree(props: { nodes: IFileNode[]; workload: string; deps: IDetailDeps }) {
  const { deps, workload } = props;
  return (
    <ul>
      {props.nodes.map(node =>
        node.children ? (
          <li key={node.path} className="jp-WorkbenchDetail-folder">
            <span>{node.name}/</span>
            <FileTree nodes={node.children} workload={workload} deps={deps} />
          </li>
        ) : (
          <li key={node.path} className="jp-WorkbenchDetail-file" data-path={node.path}>
            <a
              href={deps.api.fileURL(workload, node.path)}
              download={node.name}
              aria-label={`Download ${node.path} of ${workload}`}
            >
              {node.name}
            </a>
            <span className="jp-WorkbenchDetail-size">{formatSize(node.size ?? 0)}</span>
            <button
              type="button"
              className="jp-Button jp-mod-minimal jp-WorkbenchDetail-open"
              aria-label={`Open ${node.path} of ${workload} in Lab`}
              onClick={() =>
                void deps.commands.execute('docmanager:open', {
                  path: drivePath(workload, node.path)
                })
              }
            >
              Open
            </button>
          </li>
        )
      )}
    </ul>
  );
}

function Outputs(props: {
  workload: IWorkload;
  files: IRunFiles | null;
  error: string;
  deps: IDetailDeps;
  onRefresh: () => void;
}) {
  const { files } = props;
  return (
    <section className="jp-WorkbenchDetail-section jp-WorkbenchDetail-outputs" aria-label="Outputs">
      <h3>
        Outputs{' '}
        <button
          type="button"
          className="jp-Button jp-mod-minimal"
          aria-label={`Refresh the outputs of ${props.workload.name}`}
          onClick={props.onRefresh}
        >
          Refresh
        </button>
      </h3>
      {props.error && <p className="jp-WorkbenchDetail-error">{props.error}</p>}
      {files && files.files.length === 0 && <p>No files in the run directory (yet).</p>}
      {files && files.files.length > 0 && (
        <FileTree
          nodes={filesToTree(files.files)}
          workload={props.workload.name}
          deps={props.deps}
        />
      )}
    </section>
  );
}

/** What the server said about the run directory and the schedule's runs. */
function useRemote(workload: IWorkload | undefined, api: WorkbenchAPI) {
  const [files, setFiles] = useState<IRunFiles | null>(null);
  const [filesError, setFilesError] = useState('');
  const [runs, setRuns] = useState<IScheduledRun[] | null>(null);
  const [runsError, setRunsError] = useState('');
  const [round, refresh] = useReducer((n: number) => n + 1, 0);
  const name = workload?.name;
  const status = workload?.status;
  const schedule = workload ? isSchedule(workload) : false;
  useEffect(() => {
    if (!name) {
      return;
    }
    let live = true;
    api.files(name).then(
      reply => live && (setFiles(reply), setFilesError('')),
      error => live && setFilesError(`cannot list the run directory: ${errorMessage(error)}`)
    );
    if (schedule) {
      api.runs(name).then(
        reply => live && (setRuns(reply), setRunsError('')),
        error => live && setRunsError(`cannot list the schedule's runs: ${errorMessage(error)}`)
      );
    }
    return () => {
      live = false;
    };
  }, [name, status, schedule, api, round]);
  return { files, filesError, runs, runsError, refresh };
}

function DetailBody(props: { name: string; deps: IDetailDeps }) {
  const { deps, name } = props;
  const [, bump] = useReducer((n: number) => n + 1, 0);
  // the statuses this page saw, with when it saw them (the record keeps only start and end)
  const observed = useRef<IHistoryEntry[]>([]).current;
  const workload = deps.model.get(name);
  useEffect(() => {
    const onChange = () => bump();
    deps.model.changed.connect(onChange);
    const timer = window.setInterval(onChange, TICK_MS);
    return () => {
      deps.model.changed.disconnect(onChange);
      window.clearInterval(timer);
    };
  }, [deps.model]);
  if (workload && !observed.some(e => e.status === workload.status)) {
    observed.push({ status: workload.status, t: deps.model.now(), message: workload.message });
  }
  const remote = useRemote(workload, deps.api);
  if (!workload) {
    return (
      <div className="jp-WorkbenchDetail-missing" role="status">
        {name} is not (or no longer) a workload here.
      </div>
    );
  }
  const spec = effectiveSpec(workload);
  const point = failurePoint(workload);
  const url = endpointURL(workload);
  const tracked = mlflowRun(workload);
  return (
    <>
      <header className="jp-WorkbenchDetail-header">
        <h2>{workload.name}</h2>
        <span className="jp-WorkbenchDetail-kind">{kindLabel(workload.kind)}</span>
        <span
          className="jp-WorkbenchDetail-status"
          data-status={workload.status}
          role="status"
          aria-live="polite"
        >
          {statusLabel(workload)}
        </span>
      </header>
      <Actions workload={workload} deps={deps} hasOutput={!!remote.files?.notebook} />
      <section className="jp-WorkbenchDetail-section" aria-label="Summary">
        <dl className="jp-WorkbenchDetail-fields">
          <Field label="Backend">{workload.backend}</Field>
          {workload.owner && <Field label="Owner">{workload.owner}</Field>}
          <Field label="Resources" className="jp-WorkbenchDetail-resources">
            {resourceSummary(spec)}
          </Field>
          {formatScale(spec) && <Field label="Scale">{formatScale(spec)}</Field>}
          {workload.gpus.length > 0 && <Field label="GPUs">{workload.gpus.join(', ')}</Field>}
          {spec.image && <Field label="Image">{spec.image}</Field>}
          {spec.notebook && <Field label="Notebook">{spec.notebook}</Field>}
          <Field label="Exit code" className="jp-WorkbenchDetail-exit">
            {workload.exit_code ?? '–'}
          </Field>
          {point && (
            <Field label="Failed at" className="jp-WorkbenchDetail-failed">
              {point}
            </Field>
          )}
          {workload.message && (
            <Field label="Message" className="jp-WorkbenchDetail-message">
              {workload.message}
            </Field>
          )}
          <Field label="Run directory" className="jp-WorkbenchDetail-rundir">
            <code>{remote.files?.run_dir ?? workload.run_dir ?? '–'}</code>
          </Field>
          {tracked && (
            <Field label="MLflow run" className="jp-WorkbenchDetail-mlflow">
              {tracked.url ? (
                <a href={tracked.url} target="_blank" rel="noopener noreferrer">
                  {tracked.runId}
                </a>
              ) : (
                <code>{tracked.runId}</code>
              )}
              {tracked.parentRunId && <> (sweep run {tracked.parentRunId})</>}
            </Field>
          )}
          {url && (
            <Field label="Endpoint">
              <a
                className="jp-WorkbenchDetail-url"
                href={url}
                target="_blank"
                rel="noopener noreferrer"
              >
                {url}
              </a>
            </Field>
          )}
        </dl>
      </section>
      <Timings workload={workload} now={deps.model.now()} />
      <History entries={statusHistory(workload, observed)} />
      {workload.kind === 'dask' && <DaskSection workload={workload} deps={deps} />}
      {isSchedule(workload) && (
        <Schedule workload={workload} runs={remote.runs} error={remote.runsError} />
      )}
      <Outputs
        workload={workload}
        files={remote.files}
        error={remote.filesError}
        deps={deps}
        onRefresh={remote.refresh}
      />
      <section className="jp-WorkbenchDetail-section" aria-label="Spec">
        <h3>Spec</h3>
        <pre className="jp-WorkbenchDetail-spec">{JSON.stringify(workload.spec, null, 2)}</pre>
      </section>
    </>
  );
}

/** The tab's content; `workload` names what it shows (the layout restorer keeps it). */
export class DetailView extends ReactWidget {
  constructor(
    readonly workload: string,
    private readonly _deps: IDetailDeps
  ) {
    super();
    this.addClass('jp-WorkbenchDetail');
    this.node.dataset.workload = workload;
  }

  protected render(): JSX.Element {
    return <DetailBody name={this.workload} deps={this._deps} />;
  }
}

/** The id of a workload's detail tab. */
export function detailId(name: string): string {
  return `workbench-detail-${name}`;
}

/** A main-area tab with the details of `name` (the caller adds it to the shell). */
export function createDetailWidget(name: string, deps: IDetailDeps): MainAreaWidget<DetailView> {
  const content = new DetailView(name, deps);
  const widget = new MainAreaWidget({ content });
  // after the wrapper, which names every content "main area content"
  content.node.setAttribute('aria-label', `Details of ${name}`);
  widget.id = detailId(name);
  widget.title.label = name;
  widget.title.caption = `Details of ${name}`;
  widget.title.icon = workbenchIcon;
  widget.title.closable = true;
  return widget;
}
