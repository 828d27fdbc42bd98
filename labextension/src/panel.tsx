/**
 * The "Workbench" sidebar: workloads by kind, live status, and their actions.
 */
import { ReactWidget } from '@jupyterlab/apputils';
import {
  addIcon,
  checkIcon,
  closeIcon,
  launchIcon,
  LabIcon,
  listIcon,
  refreshIcon,
  stopIcon,
  undoIcon
} from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import type { Message } from '@lumino/messaging';
import React, { useEffect, useReducer, useState } from 'react';

import { CommandIDs } from './commands';
import {
  ageOf,
  DASK_PLOTS,
  dashboardLink,
  daskPlotLink,
  effectiveSpec,
  endpointView,
  formatAge,
  formatRate,
  formatReplicas,
  formatRevision,
  type IEndpointView,
  isActive,
  kindLabel,
  launchLabel,
  resourceSummary,
  rolloutLabel,
  statusLabel
} from './format';
import { usageIcon, workbenchIcon } from './icons';
import type { WorkloadModel } from './model';
import type { Preferences } from './settings';
import type { WorkloadSync } from './sync';
import type { IWorkload, Kind } from './types';
import type { UsageTracker } from './usage';
import { RowUsage } from './usageview';

/** How often the age column is redrawn (display only; nothing is fetched). */
const AGE_TICK_MS = 5000;

interface IPanelProps {
  model: WorkloadModel;
  sync: WorkloadSync;
  preferences: Preferences;
  tracker: UsageTracker;
  commands: CommandRegistry;
}

/** Re-render when any of the signals fires. */
function useSignals(props: IPanelProps): void {
  const [, bump] = useReducer((n: number) => n + 1, 0);
  useEffect(() => {
    const { model, sync, preferences, tracker } = props;
    const onChange = (): void => bump();
    model.changed.connect(onChange);
    sync.errorChanged.connect(onChange);
    preferences.changed.connect(onChange);
    tracker.changed.connect(onChange);
    const timer = window.setInterval(onChange, AGE_TICK_MS);
    return () => {
      model.changed.disconnect(onChange);
      sync.errorChanged.disconnect(onChange);
      preferences.changed.disconnect(onChange);
      tracker.changed.disconnect(onChange);
      window.clearInterval(timer);
    };
  }, [props.model, props.sync, props.preferences, props.tracker]);
}

function IconButton(props: { icon: LabIcon; label: string; onClick: () => void }): JSX.Element {
  return (
    <button
      className="jp-WorkbenchPanel-action jp-Button jp-mod-minimal"
      title={props.label}
      aria-label={props.label}
      onClick={props.onClick}
    >
      <props.icon.react tag="span" elementSize="small" />
    </button>
  );
}

/** A long endpoint address (a Kubernetes service proxy) ends in "…", not a wider row. */
const URL_STYLE: React.CSSProperties = {
  color: 'var(--jp-content-link-color)',
  minWidth: 0,
  overflow: 'hidden',
  textOverflow: 'ellipsis',
  whiteSpace: 'nowrap'
};

/** A serve row's endpoint: its URL, revision (and canary), replicas and request rate. */
function EndpointLines(props: { view: IEndpointView }): JSX.Element {
  const { view } = props;
  const rollout = rolloutLabel(view);
  return (
    <>
      {view.url && (
        <div className="jp-WorkbenchPanel-line jp-WorkbenchPanel-endpoint">
          <a
            className="jp-WorkbenchPanel-url"
            href={view.url}
            target="_blank"
            rel="noopener noreferrer"
            title="the endpoint (Open Inference Protocol v2, KServe V1)"
            style={URL_STYLE}
          >
            {view.url}
          </a>
        </div>
      )}
      <div className="jp-WorkbenchPanel-line jp-WorkbenchPanel-details">
        <span className="jp-WorkbenchPanel-revision">{formatRevision(view)}</span>
        <span className="jp-WorkbenchPanel-replicas" title="ready/desired replicas">
          {formatReplicas(view)}
        </span>
        <span className="jp-WorkbenchPanel-rps" title="requests per second over the last 10 s">
          {formatRate(view.rps)}
        </span>
        {rollout && (
          <span
            className={`jp-WorkbenchPanel-rollout jp-mod-${view.phase}`}
            title={view.message || undefined}
          >
            {rollout}
          </span>
        )}
      </div>
    </>
  );
}

/** A running Dask cluster's own dashboard plots, each opened in a Lab tab. */
function DaskPlots(props: { workload: IWorkload; commands: CommandRegistry }): JSX.Element | null {
  const { workload: w, commands } = props;
  const plots = DASK_PLOTS.filter(plot => daskPlotLink(w, plot));
  if (!plots.length) {
    return null;
  }
  return (
    <div className="jp-WorkbenchPanel-line jp-WorkbenchPanel-daskPlots">
      {plots.map(plot => (
        <button
          key={plot.id}
          className="jp-WorkbenchPanel-link"
          data-plot={plot.id}
          title={`Open the ${plot.label.toLowerCase()} plot of ${w.name}'s dashboard in a tab`}
          onClick={() =>
            void commands.execute(CommandIDs.daskPlot, { name: w.name, plot: plot.id })
          }
        >
          {plot.label}
        </button>
      ))}
    </div>
  );
}

function Row(props: {
  workload: IWorkload;
  now: number;
  commands: CommandRegistry;
  tracker: UsageTracker;
}): JSX.Element {
  const { workload: w, commands, tracker } = props;
  const run = (id: string) => () => void commands.execute(id, { name: w.name });
  const dashboard = w.kind === 'dask' && isActive(w.status) ? dashboardLink(w) : null;
  const endpoint = endpointView(w);
  const serving = endpoint !== null && isActive(w.status);
  const running = w.status === 'running';
  const hasUsage = running || !!tracker.summary(w);
  return (
    <li
      className="jp-WorkbenchPanel-row"
      data-workload={w.name}
      data-status={w.status}
      title={w.message || undefined}
    >
      <div className="jp-WorkbenchPanel-line">
        <span className="jp-WorkbenchPanel-name">{w.name}</span>
        <span className={`jp-WorkbenchPanel-status jp-mod-${w.status}`}>{statusLabel(w)}</span>
      </div>
      <div className="jp-WorkbenchPanel-line jp-WorkbenchPanel-details">
        <span className="jp-WorkbenchPanel-kind">{kindLabel(w.kind)}</span>
        <span className="jp-WorkbenchPanel-age" title="age">
          {formatAge(ageOf(w, props.now))}
        </span>
        <span className="jp-WorkbenchPanel-resources">{resourceSummary(effectiveSpec(w))}</span>
        <span className="jp-WorkbenchPanel-backend">{w.backend}</span>
      </div>
      {serving && <EndpointLines view={endpoint} />}
      {running && <RowUsage workload={w} tracker={tracker} onOpen={run(CommandIDs.usage)} />}
      {running && w.kind === 'dask' && <DaskPlots workload={w} commands={commands} />}
      <div className="jp-WorkbenchPanel-actions">
        <IconButton icon={listIcon} label="Logs" onClick={run(CommandIDs.logs)} />
        {hasUsage && <IconButton icon={usageIcon} label="Usage" onClick={run(CommandIDs.usage)} />}
        {isActive(w.status) && (
          <IconButton icon={stopIcon} label="Cancel" onClick={run(CommandIDs.cancel)} />
        )}
        <IconButton icon={closeIcon} label="Delete" onClick={run(CommandIDs.remove)} />
        {dashboard && (
          <IconButton icon={launchIcon} label="Dashboard" onClick={run(CommandIDs.dashboard)} />
        )}
        {w.kind === 'dask' && isActive(w.status) && (
          <IconButton icon={addIcon} label="Scale" onClick={run(CommandIDs.scale)} />
        )}
        {serving && (
          <IconButton
            icon={undoIcon}
            label={`Undo rollout of ${w.name}`}
            onClick={run(CommandIDs.undoRollout)}
          />
        )}
        {serving && endpoint.canary !== null && (
          <IconButton
            icon={checkIcon}
            label={`Promote canary of ${w.name}`}
            onClick={run(CommandIDs.promoteCanary)}
          />
        )}
        {serving && (
          <IconButton
            icon={addIcon}
            label={`Scale replicas of ${w.name}`}
            onClick={run(CommandIDs.scaleEndpoint)}
          />
        )}
      </div>
    </li>
  );
}

function Section(props: {
  kind: Kind;
  workloads: IWorkload[];
  now: number;
  commands: CommandRegistry;
  tracker: UsageTracker;
}): JSX.Element {
  return (
    <section className="jp-WorkbenchPanel-section" data-kind={props.kind}>
      <h3>
        {kindLabel(props.kind, true)}{' '}
        <span className="jp-WorkbenchPanel-count">{props.workloads.length}</span>
      </h3>
      {props.workloads.length ? (
        <ul>
          {props.workloads.map(w => (
            <Row
              key={w.name}
              workload={w}
              now={props.now}
              commands={props.commands}
              tracker={props.tracker}
            />
          ))}
        </ul>
      ) : (
        <p className="jp-WorkbenchPanel-empty">No {kindLabel(props.kind, true).toLowerCase()}</p>
      )}
    </section>
  );
}

const LAUNCH_COMMANDS: { [K in Kind]: string } = {
  pod: CommandIDs.launchPod,
  dask: CommandIDs.launchDask,
  train: CommandIDs.launchTrain,
  notebook: CommandIDs.runNotebook,
  serve: CommandIDs.launchServe
};

function Toolbar(props: {
  kinds: Kind[];
  filter: Kind | 'all';
  setFilter: (filter: Kind | 'all') => void;
  commands: CommandRegistry;
}): JSX.Element {
  return (
    <div className="jp-WorkbenchPanel-toolbar">
      <select
        aria-label="Show kind"
        value={props.filter}
        onChange={e => props.setFilter(e.target.value as Kind | 'all')}
      >
        <option value="all">All kinds</option>
        {props.kinds.map(kind => (
          <option key={kind} value={kind}>
            {kindLabel(kind, true)}
          </option>
        ))}
      </select>
      <select
        aria-label="Launch"
        className="jp-WorkbenchPanel-launch"
        value=""
        onChange={e =>
          e.target.value && void props.commands.execute(LAUNCH_COMMANDS[e.target.value as Kind])
        }
      >
        <option value="">Launch…</option>
        {props.kinds.map(kind => (
          <option key={kind} value={kind}>
            {launchLabel(kind)}
          </option>
        ))}
      </select>
      <IconButton
        icon={refreshIcon}
        label="Refresh"
        onClick={() => void props.commands.execute(CommandIDs.refresh)}
      />
    </div>
  );
}

function PanelBody(props: IPanelProps): JSX.Element {
  useSignals(props);
  const [filter, setFilter] = useState<Kind | 'all'>('all');
  const kinds = props.preferences.value.kinds;
  const shown = filter === 'all' || !kinds.includes(filter) ? kinds : [filter];
  const now = props.model.now();
  return (
    <>
      <header className="jp-WorkbenchPanel-header">Workbench</header>
      <Toolbar kinds={kinds} filter={filter} setFilter={setFilter} commands={props.commands} />
      {props.sync.error && <div className="jp-WorkbenchPanel-error">{props.sync.error}</div>}
      <div className="jp-WorkbenchPanel-sections">
        {props.model.sections(shown).map(section => (
          <Section
            key={section.kind}
            {...section}
            now={now}
            commands={props.commands}
            tracker={props.tracker}
          />
        ))}
      </div>
    </>
  );
}

/** The sidebar widget. */
export class WorkbenchPanel extends ReactWidget {
  constructor(private readonly _props: IPanelProps) {
    super();
    this.id = 'workbench-panel';
    this.addClass('jp-WorkbenchPanel');
    this.title.icon = workbenchIcon;
    this.title.caption =
      'Workbench: pods, Dask clusters, training jobs, notebook runs, model endpoints';
  }

  protected render(): JSX.Element {
    return <PanelBody {...this._props} />;
  }

  // The usage of running rows is followed only while the panel is on screen.
  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._props.tracker.setRowsShown(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._props.tracker.setRowsShown(false);
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._props.tracker.setRowsShown(this.isVisible);
  }

  protected onBeforeDetach(msg: Message): void {
    this._props.tracker.setRowsShown(false);
    super.onBeforeDetach(msg);
  }
}
