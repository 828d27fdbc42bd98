/**
 * jupyter-ml-workbench: the Workbench sidebar (model endpoints included), launch forms,
 * file-browser "Run as batch job…" and notifications.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { WorkbenchAPI } from './api';
import { CommandIDs, PALETTE_COMMANDS, registerCommands } from './commands';
import { WorkloadModel } from './model';
import { Notifier } from './notify';
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

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Launch and follow pods, Dask clusters, training jobs, notebook runs and model endpoints.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette, ISettingRegistry, IFileBrowserFactory],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    palette: ICommandPalette | null,
    registry: ISettingRegistry | null,
    browsers: IFileBrowserFactory | null
  ): void => {
    const api = new WorkbenchAPI(app.serviceManager.serverSettings);
    const model = new WorkloadModel();
    const sync = new WorkloadSync(api, model);
    const preferences = new Preferences();
    const tracker = new UsageTracker(api, model);
    const panel = new WorkbenchPanel({ model, sync, preferences, tracker, commands: app.commands });
    shell.add(panel, 'left', { rank: 600 });
    registerCommands({ app, api, model, sync, preferences, browsers, tracker, panelId: panel.id });
    addMenus(app, palette);
    new Notifier(model, preferences, app.commands);
    sync.connect(app.serviceManager.events);
    void sync.refresh().catch(error => console.warn('workbench: first listing failed:', error));
    registry
      ?.load(PLUGIN_ID)
      .then(settings => preferences.follow(settings))
      .catch(error => console.warn('workbench: settings not loaded:', error));
  }
};

export default plugin;
