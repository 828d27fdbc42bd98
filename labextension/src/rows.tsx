/**
 * One workload row of the panel: a fixed-height line (checkbox, name, status, progress,
 * duration, resources, actions), plus fixed-height detail lines for running endpoints
 * and clusters, so the list can be windowed with known heights.
 */
import {
  checkIcon,
  closeIcon,
  launchIcon,
  LabIcon,
  listIcon,
  stopIcon,
  undoIcon
} from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import React from 'react';

import { CommandIDs } from './commands';
import {
  DASK_PLOTS,
  dashboardLink,
  daskPlotLink,
  effectiveSpec,
  endpointView,
  formatRate,
  formatReplicas,
  formatRevision,
  type IEndpointView,
  isActive,
  kindLabel,
  mlflowRun,
  resourceSummary,
  rolloutLabel,
  statusLabel
} from './format';
import { usageIcon } from './icons';
import { durationOf, durationTitle, formatDuration, progressOf } from './listing';
import scaleSvg from '../style/icons/scale.svg';
import type { IWorkload } from './types';
import type { UsageTracker } from './usage';
import { RowUsage } from './usageview';

/** Scale a Dask cluster: arrows outwards (not "+"). */
export const scaleIcon = new LabIcon({ name: 'workbench:scale', svgstr: scaleSvg });

/** Pixel heights the list is windowed with (the CSS holds the rows to them). */
export const ROW_HEIGHT = 30;
export const LINE_HEIGHT = 20;

/** The actions a row's buttons and context menu run, bound by the panel. */
export interface IRowActions {
  run: (command: string, w: IWorkload) => void;
  open: (w: IWorkload) => void;
  cancel: (w: IWorkload) => void;
  scale: (w: IWorkload) => void;
}

/** Which detail lines a row shows under its main line. */
export function detailLines(w: IWorkload): { endpoint: number; usage: boolean; plots: boolean } {
  const endpoint = endpointView(w);
  const serving = endpoint !== null && isActive(w.status);
  const running = w.status === 'running';
  return {
    endpoint: serving ? (endpoint.url ? 2 : 1) : 0,
    usage: running,
    plots: running && w.kind === 'dask' && DASK_PLOTS.some(plot => daskPlotLink(w, plot))
  };
}

/** A row's height in pixels: its main line and its detail lines. */
export function rowHeight(w: IWorkload): number {
  const lines = detailLines(w);
  return (
    ROW_HEIGHT + LINE_HEIGHT * (lines.endpoint + (lines.usage ? 1 : 0) + (lines.plots ? 1 : 0))
  );
}

function IconButton(props: {
  icon: LabIcon;
  label: string;
  onClick: () => void;
  tabIndex: number;
}): JSX.Element {
  return (
    <button
      className="jp-WorkbenchPanel-action jp-Button jp-mod-minimal"
      title={props.label}
      aria-label={props.label}
      tabIndex={props.tabIndex}
      onClick={e => {
        e.stopPropagation();
        props.onClick();
      }}
    >
      <props.icon.react tag="span" elementSize="small" />
    </button>
  );
}

/** A serve row's endpoint: its URL, revision (and canary), replicas and request rate. */
function EndpointLines(props: { view: IEndpointView; tabIndex: number }): JSX.Element {
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
            tabIndex={props.tabIndex}
            onClick={e => e.stopPropagation()}
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
function DaskPlots(props: {
  workload: IWorkload;
  commands: CommandRegistry;
  tabIndex: number;
}): JSX.Element {
  const { workload: w, commands } = props;
  const plots = DASK_PLOTS.filter(plot => daskPlotLink(w, plot));
  return (
    <div className="jp-WorkbenchPanel-line jp-WorkbenchPanel-daskPlots">
      {plots.map(plot => (
        <button
          key={plot.id}
          className="jp-WorkbenchPanel-link"
          data-plot={plot.id}
          tabIndex={props.tabIndex}
          title={`Open the ${plot.label.toLowerCase()} plot of ${w.name}'s dashboard in a tab`}
          onClick={e => {
            e.stopPropagation();
            void commands.execute(CommandIDs.daskPlot, { name: w.name, plot: plot.id });
          }}
        >
          {plot.label}
        </button>
      ))}
    </div>
  );
}

export interface IRowProps {
  workload: IWorkload;
  index: number;
  count: number;
  now: number;
  selected: boolean;
  /** The row the keyboard is on: its controls are in the tab order, the others' are not. */
  active: boolean;
  commands: CommandRegistry;
  tracker: UsageTracker;
  actions: IRowActions;
  onSelect: (w: IWorkload, range: boolean) => void;
  onFocusRow: (index: number) => void;
  onContextMenu: (w: IWorkload, x: number, y: number) => void;
}

export function Row(props: IRowProps): JSX.Element {
  const { workload: w, commands, tracker, actions } = props;
  const tab = props.active ? 0 : -1;
  const lines = detailLines(w);
  const endpoint = endpointView(w);
  const dashboard = w.kind === 'dask' && isActive(w.status) ? dashboardLink(w) : null;
  const running = w.status === 'running';
  const hasUsage = running || !!tracker.summary(w);
  const progress = progressOf(w);
  const resources = resourceSummary(effectiveSpec(w));
  const tracked = mlflowRun(w);
  const run = (id: string) => () => actions.run(id, w);
  return (
    <li
      className={`jp-WorkbenchPanel-row${props.selected ? ' jp-mod-selected' : ''}`}
      style={{ height: rowHeight(w) }}
      data-workload={w.name}
      data-kind={w.kind}
      data-status={w.status}
      data-index={props.index}
      aria-posinset={props.index + 1}
      aria-setsize={props.count}
      tabIndex={tab}
      title={w.message || undefined}
      onFocus={e => e.target === e.currentTarget && props.onFocusRow(props.index)}
      onClick={e => {
        if (e.shiftKey || e.ctrlKey || e.metaKey) {
          props.onSelect(w, e.shiftKey);
          return;
        }
        actions.open(w);
      }}
      onContextMenu={e => {
        e.preventDefault();
        e.stopPropagation();
        props.onContextMenu(w, e.clientX, e.clientY);
      }}
    >
      <div className="jp-WorkbenchPanel-main">
        <input
          type="checkbox"
          className="jp-WorkbenchPanel-select"
          aria-label={`Select ${w.name}`}
          checked={props.selected}
          tabIndex={tab}
          onClick={e => {
            e.stopPropagation();
            props.onSelect(w, e.shiftKey);
          }}
          onChange={() => undefined}
        />
        <span className="jp-WorkbenchPanel-name" title={`${w.name} — ${kindLabel(w.kind)}`}>
          {w.name}
        </span>
        {progress && (
          <span
            className="jp-WorkbenchPanel-progress"
            role="progressbar"
            aria-label={`Progress of ${w.name}`}
            aria-valuemin={0}
            aria-valuemax={progress.total}
            aria-valuenow={progress.done}
            aria-valuetext={progress.label}
            title={progress.label}
          >
            <span style={{ width: `${progress.percent}%` }} />
          </span>
        )}
        <span className="jp-WorkbenchPanel-duration" title={durationTitle(w)}>
          {formatDuration(durationOf(w, props.now))}
        </span>
        <span
          className="jp-WorkbenchPanel-resources"
          title={resources === '—' ? 'no resources set' : `resources: ${resources}`}
        >
          {resources}
        </span>
        {tracked?.url && (
          <a
            className="jp-WorkbenchPanel-mlflow"
            href={tracked.url}
            target="_blank"
            rel="noopener noreferrer"
            aria-label={`MLflow run of ${w.name}`}
            title={`MLflow run ${tracked.runId}`}
            tabIndex={tab}
            onClick={e => e.stopPropagation()}
          >
            MLflow
          </a>
        )}
        <span className={`jp-WorkbenchPanel-status jp-mod-${w.status}`}>{statusLabel(w)}</span>
        <span className="jp-WorkbenchPanel-actions">
          <IconButton
            icon={listIcon}
            label={`Logs of ${w.name}`}
            onClick={run(CommandIDs.logs)}
            tabIndex={tab}
          />
          {hasUsage && (
            <IconButton
              icon={usageIcon}
              label={`Usage of ${w.name}`}
              onClick={run(CommandIDs.usage)}
              tabIndex={tab}
            />
          )}
          {isActive(w.status) && (
            <IconButton
              icon={stopIcon}
              label={`Cancel ${w.name}`}
              onClick={() => actions.cancel(w)}
              tabIndex={tab}
            />
          )}
          <IconButton
            icon={closeIcon}
            label={`Delete ${w.name}`}
            onClick={run(CommandIDs.remove)}
            tabIndex={tab}
          />
          {dashboard && (
            <IconButton
              icon={launchIcon}
              label={`Dashboard of ${w.name}`}
              onClick={run(CommandIDs.dashboard)}
              tabIndex={tab}
            />
          )}
          {w.kind === 'dask' && isActive(w.status) && (
            <IconButton
              icon={scaleIcon}
              label={`Scale ${w.name}`}
              onClick={() => actions.scale(w)}
              tabIndex={tab}
            />
          )}
          {lines.endpoint > 0 && (
            <>
              <IconButton
                icon={undoIcon}
                label={`Undo rollout of ${w.name}`}
                onClick={run(CommandIDs.undoRollout)}
                tabIndex={tab}
              />
              {endpoint?.canary !== null && (
                <IconButton
                  icon={checkIcon}
                  label={`Promote canary of ${w.name}`}
                  onClick={run(CommandIDs.promoteCanary)}
                  tabIndex={tab}
                />
              )}
              <IconButton
                icon={scaleIcon}
                label={`Scale replicas of ${w.name}`}
                onClick={run(CommandIDs.scaleEndpoint)}
                tabIndex={tab}
              />
            </>
          )}
        </span>
      </div>
      {lines.endpoint > 0 && endpoint && <EndpointLines view={endpoint} tabIndex={tab} />}
      {lines.usage && (
        <div className="jp-WorkbenchPanel-usageSlot" onClick={e => e.stopPropagation()}>
          <RowUsage workload={w} tracker={tracker} onOpen={run(CommandIDs.usage)} tabIndex={tab} />
        </div>
      )}
      {lines.plots && <DaskPlots workload={w} commands={commands} tabIndex={tab} />}
    </li>
  );
}
