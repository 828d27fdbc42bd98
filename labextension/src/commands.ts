/**
 * The extension's commands: open, launch, refresh, and the per-workload actions
 * the panel's buttons run.
 */
import type { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  InputDialog,
  MainAreaWidget,
  Notification,
  showDialog,
  type WidgetTracker
} from '@jupyterlab/apputils';
import type { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import type { IFrame } from '@jupyterlab/ui-components';

import { batchDialog } from './batch';
import { createDaskPlotWidget } from './dask';
import type { DetailView } from './detail';
import { dashboardLink, daskPlot, daskPlotLink, endpointView, isActive, kindNoun } from './format';
import { errorMessage } from './handler';
import { type ILaunchDeps, launchDialog } from './launch';
import { createLogsWidget, type LogView } from './logs';
import type { WorkloadModel } from './model';
import { notifyError } from './notify';
import { scaleCluster } from './scale';
import type { WorkloadSync } from './sync';
import type { IWorkload, Kind } from './types';
import type { UsageTracker } from './usage';
import { createUsageWidget, type UsageView } from './usageview';

export namespace CommandIDs {
  export const open = 'workbench:open';
  export const refresh = 'workbench:refresh';
  export const launchPod = 'workbench:launch-pod';
  export const launchDask = 'workbench:launch-dask';
  export const launchTrain = 'workbench:launch-train';
  export const runNotebook = 'workbench:run-notebook';
  export const runNotebookFile = 'workbench:run-notebook-file';
  export const logs = 'workbench:logs';
  export const cancel = 'workbench:cancel';
  export const remove = 'workbench:delete';
  export const scale = 'workbench:scale';
  export const dashboard = 'workbench:dashboard';
  export const launchServe = 'workbench:launch-serve';
  export const undoRollout = 'workbench:rollout-undo';
  export const promoteCanary = 'workbench:rollout-promote';
  export const scaleEndpoint = 'workbench:scale-endpoint';
  export const usage = 'workbench:usage';
  export const daskPlot = 'workbench:dask-plot';
  export const openDetail = 'workbench:open-detail';
  export const clone = 'workbench:clone';
  export const rerun = 'workbench:rerun';
  export const adapt = 'workbench:adapt';
  export const copyClientCode = 'workbench:copy-client-code';
  export const openOutput = 'workbench:open-output';
  export const pause = 'workbench:pause';
  export const resume = 'workbench:resume';
  export const rollout = 'workbench:rollout';
}

/** The main-area tabs the layout restorer brings back after a reload. */
export interface ITrackers {
  detail: WidgetTracker<MainAreaWidget<DetailView>>;
  logs: WidgetTracker<MainAreaWidget<LogView>>;
  dask: WidgetTracker<MainAreaWidget<IFrame>>;
}

/** The most replicas an endpoint keeps (the server's limit). */
const MAX_REPLICAS = 100;

/** The commands the palette lists, in "Workbench" order. */
export const PALETTE_COMMANDS = [
  CommandIDs.open,
  CommandIDs.launchPod,
  CommandIDs.launchDask,
  CommandIDs.launchTrain,
  CommandIDs.runNotebook,
  CommandIDs.launchServe,
  CommandIDs.refresh
];

export interface ICommandDeps extends ILaunchDeps {
  app: JupyterFrontEnd;
  sync: WorkloadSync;
  panelId: string;
  browsers: IFileBrowserFactory | null;
  tracker: UsageTracker;
  trackers: ITrackers;
}

type Args = { [key: string]: unknown };

export function nameOf(args: Args): string {
  const name = args['name'];
  if (typeof name !== 'string' || !name) {
    throw new Error('this command needs a workload name (args.name)');
  }
  return name;
}

/** Run an action; a failure becomes a notification naming the action and the workload. */
export async function attempt(what: string, action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    notifyError(what, errorMessage(error));
  }
}

/** The .ipynb files selected in the file browser, as paths relative to the server root. */
function selectedNotebooks(deps: ICommandDeps): string[] {
  const browser = deps.browsers?.tracker.currentWidget;
  if (!browser) {
    return [];
  }
  const contents = deps.app.serviceManager.contents;
  return Array.from(browser.selectedItems())
    .filter(item => item.type === 'notebook' || item.path.endsWith('.ipynb'))
    .map(item => contents.localPath(item.path));
}

/**
 * The record of `name`: the model's, else fetched (a tab restored after a reload can ask
 * before the first listing arrived).
 */
export async function recordOf(
  deps: { api: ICommandDeps['api']; model: WorkloadModel },
  name: string
): Promise<IWorkload> {
  const held = deps.model.get(name);
  if (held) {
    return held;
  }
  const record = await deps.api.get(name);
  deps.model.upsert(record);
  return deps.model.get(name) ?? record;
}

function openLogs(deps: ICommandDeps, name: string): void {
  const logs = deps.trackers.logs;
  let widget = logs.find(w => w.content.workload === name);
  if (!widget || widget.isDisposed) {
    const notebook = deps.model.get(name)?.kind === 'notebook';
    widget = createLogsWidget(deps.api, name, {
      commands: notebook ? deps.app.commands : undefined,
      outputCommand: notebook ? CommandIDs.openOutput : undefined
    });
    deps.app.shell.add(widget, 'main');
    void logs.add(widget);
  }
  deps.app.shell.activateById(widget.id);
}

async function confirmCancel(name: string): Promise<boolean> {
  const result = await showDialog({
    title: `Cancel ${name}?`,
    body: 'It stops now; its logs and outputs so far are kept.',
    buttons: [
      Dialog.cancelButton({ label: 'Keep running' }),
      Dialog.warnButton({ label: 'Cancel workload' })
    ]
  });
  return result.button.accept;
}

async function confirmDelete(name: string, active: boolean): Promise<boolean> {
  const result = await showDialog({
    title: `Delete ${name}?`,
    body: active
      ? 'It is still running: deleting cancels it, then removes its record and run directory.'
      : 'This removes its record and run directory (logs and outputs).',
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
  });
  return result.button.accept;
}

function addLaunchCommand(deps: ICommandDeps, id: string, kind: Kind, label: string): void {
  deps.app.commands.addCommand(id, {
    label,
    caption:
      kind === 'serve'
        ? 'Serve a model behind an endpoint, from a form'
        : `Launch a ${kindNoun(kind)} from a form`,
    execute: () => launchDialog(kind, deps)
  });
}

export function registerCommands(deps: ICommandDeps): void {
  const { app, api, model, sync } = deps;
  const add = app.commands.addCommand.bind(app.commands);

  add(CommandIDs.open, {
    label: 'Workbench: Open panel',
    execute: () => app.shell.activateById(deps.panelId)
  });
  add(CommandIDs.refresh, {
    label: 'Workbench: Refresh',
    execute: () => attempt('Refresh the workload list', () => sync.refresh())
  });
  addLaunchCommand(deps, CommandIDs.launchPod, 'pod', 'Workbench: Launch pod…');
  addLaunchCommand(deps, CommandIDs.launchDask, 'dask', 'Workbench: Launch Dask cluster…');
  addLaunchCommand(deps, CommandIDs.launchTrain, 'train', 'Workbench: Launch training job…');
  addLaunchCommand(deps, CommandIDs.launchServe, 'serve', 'Workbench: Serve a model…');
  add(CommandIDs.runNotebook, {
    label: 'Workbench: Run notebook as batch job…',
    execute: () => launchDialog('notebook', deps, { notebook: selectedNotebooks(deps)[0] ?? '' })
  });
  add(CommandIDs.runNotebookFile, {
    label: 'Run as batch job…',
    caption: 'Run this notebook headless as a workload (papermill), with its parameters',
    execute: async args => {
      const given = typeof args['path'] === 'string' ? [args['path']] : selectedNotebooks(deps);
      for (const notebook of given) {
        await batchDialog(deps, notebook);
      }
    }
  });
  add(CommandIDs.logs, {
    label: args => `Show logs of ${String(args['name'] ?? 'a workload')}`,
    execute: async args => {
      // a tab restored before the first listing still learns the kind (its output button)
      await recordOf(deps, nameOf(args)).catch(() => undefined);
      openLogs(deps, nameOf(args));
    }
  });
  add(CommandIDs.cancel, {
    label: 'Cancel workload',
    execute: args =>
      attempt(`Cancel ${nameOf(args)}`, async () => {
        const name = nameOf(args);
        if (args['confirm'] === true && !(await confirmCancel(name))) {
          return;
        }
        model.upsert(await api.cancel(name));
      })
  });
  add(CommandIDs.remove, {
    label: 'Delete workload',
    execute: args =>
      attempt(`Delete ${nameOf(args)}`, async () => {
        const name = nameOf(args);
        const active = isActive(model.get(name)?.status ?? 'succeeded');
        if (await confirmDelete(name, active)) {
          await api.remove(name, active);
          model.remove(name);
          deps.trackers.logs.find(w => w.content.workload === name)?.dispose();
          deps.trackers.detail.find(w => w.content.workload === name)?.dispose();
        }
      })
  });
  add(CommandIDs.scale, {
    label: args => `Scale ${String(args['name'] ?? 'a Dask cluster')}`,
    execute: args =>
      attempt(`Scale ${nameOf(args)}`, async () => {
        // the panel's dialog: a bad count is named next to its field
        await scaleCluster(sync, await recordOf(deps, nameOf(args)));
      })
  });
  add(CommandIDs.dashboard, {
    label: 'Open Dask dashboard',
    isEnabled: args => {
      const workload = typeof args['name'] === 'string' ? model.get(args['name']) : undefined;
      return !!workload && !!dashboardLink(workload, api.settings.baseUrl);
    },
    execute: args => {
      const workload = model.get(nameOf(args));
      const link = workload ? dashboardLink(workload, api.settings.baseUrl) : null;
      if (link) {
        window.open(link, '_blank', 'noopener');
      }
    }
  });
  registerEndpointCommands(deps);
  registerUsageCommands(deps);
}

/** Open a main-area tab once per id; later calls bring it to the front. */
function openTab(deps: ICommandDeps, id: string, create: () => MainAreaWidget): void {
  const shell = deps.app.shell;
  for (const widget of shell.widgets('main')) {
    if (widget.id === id) {
      shell.activateById(id);
      return;
    }
  }
  const widget = create();
  shell.add(widget, 'main');
  shell.activateById(widget.id);
}

/** A workload's usage plots, and a Dask cluster's own dashboard plots, in main-area tabs. */
function registerUsageCommands(deps: ICommandDeps): void {
  const { app, api, model, tracker } = deps;
  app.commands.addCommand(CommandIDs.usage, {
    label: args => `Resource usage of ${String(args['name'] ?? 'a workload')}`,
    execute: args => {
      const name = nameOf(args);
      openTab(deps, `workbench-usage-${name}`, (): MainAreaWidget<UsageView> =>
        createUsageWidget(name, tracker, model)
      );
    }
  });
  app.commands.addCommand(CommandIDs.daskPlot, {
    label: args =>
      `${daskPlot(args['plot'])?.label ?? 'Dashboard plot'} of ${String(args['name'] ?? 'a Dask cluster')}`,
    isEnabled: args => {
      const workload = typeof args['name'] === 'string' ? model.get(args['name']) : undefined;
      const plot = daskPlot(args['plot']);
      return !!workload && !!plot && !!daskPlotLink(workload, plot, api.settings.baseUrl);
    },
    execute: async args => {
      const name = nameOf(args);
      const plot = daskPlot(args['plot']);
      const workload = await recordOf(deps, name).catch(() => undefined);
      const url = workload && plot ? daskPlotLink(workload, plot, api.settings.baseUrl) : null;
      if (!plot || !url) {
        notifyError(
          `Open a dashboard plot of ${name}`,
          'the cluster has no dashboard address (yet)'
        );
        return;
      }
      openTab(deps, `workbench-dask-${name}-${plot.id}`, (): MainAreaWidget<IFrame> => {
        const widget = createDaskPlotWidget(name, plot, url);
        void deps.trackers.dask.add(widget);
        return widget;
      });
    }
  });
}

/** Row actions of model endpoints: undo the last rollout, promote a canary, scale replicas. */
function registerEndpointCommands(deps: ICommandDeps): void {
  const { app, api, model, sync } = deps;
  const add = app.commands.addCommand.bind(app.commands);
  add(CommandIDs.undoRollout, {
    label: args => `Undo the last rollout of ${String(args['name'] ?? 'an endpoint')}`,
    execute: args =>
      attempt(`Undo the rollout of ${nameOf(args)}`, async () => {
        const name = nameOf(args);
        await api.rollout(name, { action: 'undo' });
        Notification.info(`Undoing the last rollout of ${name}`, { autoClose: 3000 });
        void sync.fetchOne(name);
      })
  });
  add(CommandIDs.promoteCanary, {
    label: args => `Promote the canary of ${String(args['name'] ?? 'an endpoint')}`,
    execute: args =>
      attempt(`Promote the canary of ${nameOf(args)}`, async () => {
        const name = nameOf(args);
        await api.rollout(name, { action: 'promote' });
        Notification.info(`Sending every request of ${name} to its canary`, { autoClose: 3000 });
        void sync.fetchOne(name);
      })
  });
  add(CommandIDs.scaleEndpoint, {
    label: args => `Scale the replicas of ${String(args['name'] ?? 'an endpoint')}`,
    execute: args =>
      attempt(`Scale ${nameOf(args)}`, async () => {
        const name = nameOf(args);
        const workload = model.get(name);
        const view = workload ? endpointView(workload) : null;
        const result = await InputDialog.getNumber({
          title: `Scale ${name} to how many replicas?`,
          value: view?.replicas || workload?.spec.replicas || 1
        });
        if (!result.button.accept || result.value === null) {
          return;
        }
        const replicas = Math.round(result.value);
        if (!(replicas >= 1 && replicas <= MAX_REPLICAS)) {
          throw new Error(`an endpoint keeps 1 to ${MAX_REPLICAS} replicas, not ${result.value}`);
        }
        model.upsert(await api.scaleEndpoint(name, { replicas }));
        Notification.info(`Scaling ${name} to ${replicas} replicas`, { autoClose: 3000 });
      })
  });
}
