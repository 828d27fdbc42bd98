/**
 * jupyter-ml-workbench: the Workbench sidebar (model endpoints included), launch forms,
 * detail views, run outputs, the batch dialog for "Run as batch job…" and notifications.
 * The sidebar, detail tabs, log tabs and Dask plots come back after a reload.
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import type { IFrame } from '@jupyterlab/ui-components';

import { WorkbenchAPI } from './api';
import { registerClone } from './clone';
import { CommandIDs, type ITrackers, PALETTE_COMMANDS, registerCommands } from './commands';
import { plotOf } from './dask';
import type { DetailView } from './detail';
import { registerDetailCommands } from './detailcommands';
import type { LogView } from './logs';
import { WorkloadModel } from './model';
import { Notifier } from './notify';
import { RunsDrive } from './outputs';
import { WorkbenchPanel } from './panel';
import { Preferences } from './settings';
import { WorkloadSync } from './sync';
import { UsageTracker } from './usage';

const PLUGIN_ID = 'jupyter-ml-workbench:plugin';

function addMenus(app: JupyterFrontEnd, palette: ICommandPalette | null): void {
  for (const command of PALETTE_COMMANDS) {
    palette?.addItem({ command, category: 'Workbench' });
  }
  app.contextMenu.addItem({
    command: CommandIDs.runNotebookFile,
    selector: '.jp-DirListing-item[data-file-type="notebook"]',
    rank: 60
  });
}

function createTrackers(): ITrackers {
  return {
    detail: new WidgetTracker<MainAreaWidget<DetailView>>({ namespace: 'workbench-detail' }),
    logs: new WidgetTracker<MainAreaWidget<LogView>>({ namespace: 'workbench-logs' }),
    dask: new WidgetTracker<MainAreaWidget<IFrame>>({ namespace: 'workbench-dask-plot' })
  };
}

/** Bring back the sidebar and the tabs that were open before the reload. */
function restoreLayout(
  restorer: ILayoutRestorer,
  panel: WorkbenchPanel,
  trackers: ITrackers
): void {
  restorer.add(panel, 'workbench-panel');
  void restorer.restore(trackers.detail, {
    command: CommandIDs.openDetail,
    args: widget => ({ id: widget.content.workload }),
    name: widget => widget.content.workload
  });
  void restorer.restore(trackers.logs, {
    command: CommandIDs.logs,
    args: widget => ({ name: widget.content.workload }),
    name: widget => widget.content.workload
  });
  void restorer.restore(trackers.dask, {
    command: CommandIDs.daskPlot,
    args: widget => plotOf(widget),
    name: widget => `${plotOf(widget).name}:${plotOf(widget).plot}`
  });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Launch and follow pods, Dask clusters, training jobs, notebook runs and model endpoints.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette, ISettingRegistry, IFileBrowserFactory, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    palette: ICommandPalette | null,
    registry: ISettingRegistry | null,
    browsers: IFileBrowserFactory | null,
    restorer: ILayoutRestorer | null
  ): void => {
    const api = new WorkbenchAPI(app.serviceManager.serverSettings);
    const model = new WorkloadModel();
    const sync = new WorkloadSync(api, model);
    const preferences = new Preferences();
    const tracker = new UsageTracker(api, model);
    const panel = new WorkbenchPanel({ model, sync, preferences, tracker, commands: app.commands });
    shell.add(panel, 'left', { rank: 600 });
    const trackers = createTrackers();
    const deps = { app, api, model, sync, preferences, browsers, tracker, trackers };
    registerCommands({ ...deps, panelId: panel.id });
    registerDetailCommands({ ...deps, panelId: panel.id });
    registerClone(app, { api, model, preferences });
    app.serviceManager.contents.addDrive(new RunsDrive(api));
    addMenus(app, palette);
    new Notifier(model, preferences, app.commands);
    sync.connect(app.serviceManager.events);
    void sync.refresh().catch(error => console.warn('workbench: first listing failed:', error));
    if (restorer) {
      restoreLayout(restorer, panel, trackers);
    }
    registry
      ?.load(PLUGIN_ID)
      .then(settings => preferences.follow(settings))
      .catch(error => console.warn('workbench: settings not loaded:', error));
  }
};

export default plugin;
