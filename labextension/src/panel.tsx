/**
 * The "Workbench" sidebar: one windowed list of workloads, newest first, with search,
 * status and kind filters, sort, multi-select with bulk actions, "clear finished", a
 * launch menu button, and a live region announcing status changes.
 */
import { ReactWidget } from '@jupyterlab/apputils';
import { refreshIcon } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import type { Message } from '@lumino/messaging';
import React, { useEffect, useReducer, useRef, useState } from 'react';

import {
  cancelSelected,
  clearFinished,
  confirmCancel,
  deleteSelected,
  launchMenu,
  OPEN_DETAIL_COMMAND,
  rowMenu
} from './actions';
import { CLONE_COMMAND } from './clone';
import { CommandIDs } from './commands';
import { isActive, isFinal, kindLabel, launchLabel } from './format';
import { workbenchIcon } from './icons';
import {
  DEFAULT_QUERY,
  type IListQuery,
  pruneSelection,
  selectionState,
  SORT_ORDERS,
  STATUS_FILTERS,
  statusChanges,
  toggleAll,
  toggleSelection,
  visibleWorkloads
} from './listing';
import type { WorkloadModel } from './model';
import { type IRowActions } from './rows';
import type { Preferences } from './settings';
import { scaleCluster } from './scale';
import type { WorkloadSync } from './sync';
import type { IWorkload, Kind, Status } from './types';
import type { UsageTracker } from './usage';
import { WorkloadList } from './workloadlist';

/** How often durations of running rows are redrawn (display only; nothing is fetched). */
const TICK_MS = 1000;

interface IPanelProps {
  model: WorkloadModel;
  sync: WorkloadSync;
  preferences: Preferences;
  tracker: UsageTracker;
  commands: CommandRegistry;
}

const LAUNCH_COMMANDS: { [K in Kind]: string } = {
  pod: CommandIDs.launchPod,
  dask: CommandIDs.launchDask,
  train: CommandIDs.launchTrain,
  notebook: CommandIDs.runNotebook,
  serve: CommandIDs.launchServe
};

/** Re-render when any of the signals fires; say what changed status in the live region. */
function useSignals(props: IPanelProps, announce: (text: string) => void): void {
  const [, bump] = useReducer((n: number) => n + 1, 0);
  useEffect(() => {
    const { model, sync, preferences, tracker } = props;
    const statuses = new Map<string, Status>(model.list().map(w => [w.name, w.status]));
    const onChange = (): void => bump();
    const onModel = (): void => {
      const all = model.list();
      const changes = statusChanges(statuses, all);
      statuses.clear();
      for (const w of all) {
        statuses.set(w.name, w.status);
      }
      if (changes.length) {
        announce(
          changes.length > 3 ? `${changes.length} workloads changed status` : changes.join('; ')
        );
      }
      bump();
    };
    model.changed.connect(onModel);
    sync.errorChanged.connect(onChange);
    preferences.changed.connect(onChange);
    tracker.changed.connect(onChange);
    const timer = window.setInterval(() => {
      if (model.list({ statuses: ['pending', 'running'] }).length) {
        bump();
      }
    }, TICK_MS);
    return () => {
      model.changed.disconnect(onModel);
      sync.errorChanged.disconnect(onChange);
      preferences.changed.disconnect(onChange);
      tracker.changed.disconnect(onChange);
      window.clearInterval(timer);
    };
  }, [props.model, props.sync, props.preferences, props.tracker]);
}

/** "Launch…": a menu button; its menu is reachable and operable by keyboard. */
function LaunchButton(props: { kinds: Kind[]; commands: CommandRegistry }): JSX.Element {
  const ref = useRef<HTMLButtonElement>(null);
  const [open, setOpen] = useState(false);
  const show = (keyboard: boolean): void => {
    const button = ref.current;
    if (!button) {
      return;
    }
    const menu = launchMenu(
      props.kinds.map(kind => ({
        label: launchLabel(kind),
        run: () => void props.commands.execute(LAUNCH_COMMANDS[kind])
      }))
    );
    menu.aboutToClose.connect(() => {
      setOpen(false);
      window.setTimeout(() => menu.dispose());
    });
    const rect = button.getBoundingClientRect();
    setOpen(true);
    menu.open(rect.left, rect.bottom);
    if (keyboard) {
      menu.activeIndex = 0;
    }
  };
  return (
    <button
      ref={ref}
      className="jp-WorkbenchPanel-launch jp-Button jp-mod-styled jp-mod-accept"
      aria-haspopup="menu"
      aria-expanded={open}
      onClick={e => show(e.detail === 0)}
      onKeyDown={e => {
        if (e.key === 'ArrowDown') {
          e.preventDefault();
          show(true);
        }
      }}
    >
      Launch…
    </button>
  );
}

function Toolbar(props: {
  query: IListQuery;
  setQuery: (query: IListQuery) => void;
  kinds: Kind[];
  commands: CommandRegistry;
  finished: number;
  onClear: () => void;
}): JSX.Element {
  const { query, setQuery } = props;
  return (
    <div className="jp-WorkbenchPanel-toolbar" role="toolbar" aria-label="Workloads">
      <div className="jp-WorkbenchPanel-toolbarRow">
        <LaunchButton kinds={props.kinds} commands={props.commands} />
        <button
          className="jp-WorkbenchPanel-clear jp-Button jp-mod-styled jp-mod-reject"
          disabled={!props.finished}
          title="Delete the finished workloads shown (asks first)"
          onClick={props.onClear}
        >
          Clear finished
        </button>
      </div>
      <input
        type="search"
        className="jp-WorkbenchPanel-search jp-mod-styled"
        placeholder="Search workloads"
        aria-label="Search workloads"
        value={query.search}
        onChange={e => setQuery({ ...query, search: e.target.value })}
      />
      <div className="jp-WorkbenchPanel-toolbarRow">
        <Choice
          label="Status"
          value={query.status}
          options={STATUS_FILTERS}
          onChange={status => setQuery({ ...query, status: status as IListQuery['status'] })}
        />
        <Choice
          label="Kind"
          value={query.kind}
          options={[
            { value: 'all', label: 'All kinds' },
            ...props.kinds.map(kind => ({ value: kind, label: kindLabel(kind, true) }))
          ]}
          onChange={kind => setQuery({ ...query, kind: kind as IListQuery['kind'] })}
        />
        <Choice
          label="Sort"
          value={query.sort}
          options={SORT_ORDERS}
          onChange={sort => setQuery({ ...query, sort: sort as IListQuery['sort'] })}
        />
      </div>
    </div>
  );
}

/** A labelled drop-down of the toolbar (status filter, kind filter, sort order). */
function Choice(props: {
  label: string;
  value: string;
  options: readonly { value: string; label: string }[];
  onChange: (value: string) => void;
}): JSX.Element {
  return (
    <select
      aria-label={props.label}
      value={props.value}
      onChange={e => props.onChange(e.target.value)}
    >
      {props.options.map(o => (
        <option key={o.value} value={o.value}>
          {o.label}
        </option>
      ))}
    </select>
  );
}

/** The bar over the list: select all, how many are selected, and what to do with them. */
function SelectionBar(props: {
  shown: IWorkload[];
  selected: Set<string>;
  setSelected: (next: Set<string>) => void;
  onCancel: () => void;
  onDelete: () => void;
}): JSX.Element {
  const order = props.shown.map(w => w.name);
  const state = selectionState(props.selected, order);
  const box = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (box.current) {
      box.current.indeterminate = state === 'some';
    }
  });
  const chosen = props.shown.filter(w => props.selected.has(w.name));
  const active = chosen.filter(w => isActive(w.status)).length;
  return (
    <div className="jp-WorkbenchPanel-selection">
      <input
        ref={box}
        type="checkbox"
        aria-label="Select all shown"
        checked={state === 'all'}
        disabled={!order.length}
        onChange={() => props.setSelected(toggleAll(props.selected, order))}
      />
      <span className="jp-WorkbenchPanel-count" aria-live="polite">
        {chosen.length
          ? `${chosen.length} selected`
          : `${order.length} ${order.length === 1 ? 'workload' : 'workloads'}`}
      </span>
      {chosen.length > 0 && (
        <>
          <button
            className="jp-WorkbenchPanel-bulk jp-Button jp-mod-styled"
            disabled={!active}
            onClick={props.onCancel}
          >
            Cancel selected
          </button>
          <button
            className="jp-WorkbenchPanel-bulk jp-Button jp-mod-styled jp-mod-warn"
            onClick={props.onDelete}
          >
            Delete selected
          </button>
        </>
      )}
    </div>
  );
}

function PanelBody(props: IPanelProps): JSX.Element {
  const [announcement, setAnnouncement] = useState('');
  useSignals(props, setAnnouncement);
  const [query, setQuery] = useState<IListQuery>(DEFAULT_QUERY);
  const [selected, setSelectedState] = useState<Set<string>>(new Set());
  const anchor = useRef<string | null>(null);
  const { model, sync, commands, tracker } = props;
  const kinds = props.preferences.value.kinds;
  const shown = visibleWorkloads(model.list(), query, kinds);
  const order = shown.map(w => w.name);
  const current = pruneSelection(selected, order);
  const setSelected = (next: Set<string>): void => setSelectedState(next);
  const finished = shown.filter(w => isFinal(w.status)).length;
  const now = model.now();

  const cancel = (w: IWorkload): void => {
    void confirmCancel(w).then(ok => ok && commands.execute(CommandIDs.cancel, { name: w.name }));
  };
  const openDetail = (w: IWorkload): void => {
    if (commands.hasCommand(OPEN_DETAIL_COMMAND)) {
      void commands.execute(OPEN_DETAIL_COMMAND, { id: w.id });
    }
  };
  const actions: IRowActions = {
    run: (command, w) => void commands.execute(command, { name: w.name }),
    open: openDetail,
    cancel,
    scale: w => void scaleCluster(sync, w)
  };
  const onSelect = (w: IWorkload, range: boolean): void => {
    setSelected(toggleSelection(current, order, w.name, { range, anchor: anchor.current }));
    anchor.current = w.name;
  };
  const onContextMenu = (w: IWorkload, x: number, y: number): void => {
    const menu = rowMenu(
      w,
      {
        open: openDetail,
        logs: w => void commands.execute(CommandIDs.logs, { name: w.name }),
        cancel,
        remove: w => void commands.execute(CommandIDs.remove, { name: w.name }),
        clone: w => void commands.execute(CLONE_COMMAND, { id: w.id })
      },
      commands
    );
    menu.aboutToClose.connect(() => window.setTimeout(() => menu.dispose()));
    menu.open(x, y);
  };
  const chosen = (): IWorkload[] => shown.filter(w => current.has(w.name));
  return (
    <>
      <div className="jp-WorkbenchPanel-top">
        <header className="jp-WorkbenchPanel-header">Workbench</header>
        <button
          className="jp-WorkbenchPanel-action jp-Button jp-mod-minimal"
          title="Refresh"
          aria-label="Refresh"
          onClick={() => void commands.execute(CommandIDs.refresh)}
        >
          <refreshIcon.react tag="span" elementSize="small" />
        </button>
      </div>
      <Toolbar
        query={query}
        setQuery={setQuery}
        kinds={kinds}
        commands={commands}
        finished={finished}
        onClear={() => void clearFinished(sync, shown)}
      />
      <SelectionBar
        shown={shown}
        selected={current}
        setSelected={setSelected}
        onCancel={() => void cancelSelected(sync, chosen())}
        onDelete={() =>
          void deleteSelected(sync, chosen()).then(ok => ok && setSelected(new Set()))
        }
      />
      {sync.error && (
        <div className="jp-WorkbenchPanel-error" role="alert">
          {sync.error}
        </div>
      )}
      <div className="jp-WorkbenchPanel-live" aria-live="polite" role="status">
        {announcement}
      </div>
      {shown.length ? (
        <WorkloadList
          workloads={shown}
          now={now}
          selected={current}
          commands={commands}
          tracker={tracker}
          actions={actions}
          onSelect={onSelect}
          onContextMenu={onContextMenu}
        />
      ) : (
        <p className="jp-WorkbenchPanel-empty">
          {model.size
            ? 'No workload matches the search and filters'
            : 'No workloads yet: launch one'}
        </p>
      )}
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
