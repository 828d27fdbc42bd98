/**
 * The commands of the detail view: open it, re-run, adapt a Dask cluster, copy its client
 * code, open a run's output notebook, pause/resume a schedule, roll out a new model revision.
 */
import { Clipboard, InputDialog, Notification } from '@jupyterlab/apputils';

import { attempt, CommandIDs, type ICommandDeps, nameOf, recordOf } from './commands';
import { createDetailWidget, detailId } from './detail';
import { clientCode, parseAdapt, schedulerAddress } from './detailstate';
import { kindNoun } from './format';
import { APIError } from './handler';
import { notifyError } from './notify';
import { drivePath } from './runfiles';

/** Open (or bring to the front) the detail tab of `name`. */
function openDetail(deps: ICommandDeps, name: string): void {
  const { app, trackers } = deps;
  let widget = trackers.detail.find(w => w.content.workload === name);
  if (!widget || widget.isDisposed) {
    widget = createDetailWidget(name, { api: deps.api, model: deps.model, commands: app.commands });
    app.shell.add(widget, 'main');
    void trackers.detail.add(widget);
  }
  app.shell.activateById(widget.id);
  widget.content.node.focus();
}

async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    Clipboard.copyToSystem(text);
  }
}

export function registerDetailCommands(deps: ICommandDeps): void {
  const { app, api, model } = deps;
  const add = app.commands.addCommand.bind(app.commands);
  add(CommandIDs.openDetail, {
    label: args => `Details of ${String(args['id'] ?? args['name'] ?? 'a workload')}`,
    execute: async args => {
      const id = args['id'] ?? args['name'];
      if (typeof id !== 'string' || !id) {
        throw new Error('workbench:open-detail needs a workload id (args.id)');
      }
      // a restored tab may open before the first listing: fetch the record it shows
      try {
        await recordOf(deps, id);
      } catch (error) {
        if (error instanceof APIError && error.status === 404) {
          notifyError(`Open the details of ${id}`, `${id} is not a workload (any more)`);
          return;
        }
        console.warn(`workbench: ${id}:`, error);
      }
      openDetail(deps, id);
    }
  });
  add(CommandIDs.rerun, {
    label: args => `Re-run ${String(args['name'] ?? 'a workload')}`,
    execute: args =>
      attempt(`Re-run ${nameOf(args)}`, async () => {
        const record = await api.rerun(nameOf(args));
        model.upsert(record);
        model.markLaunched(record.name);
        Notification.info(`Re-running ${nameOf(args)} as ${kindNoun(record.kind)} ${record.name}`, {
          autoClose: 3000
        });
        openDetail(deps, record.name);
      })
  });
  add(CommandIDs.adapt, {
    label: args => `Adapt the workers of ${String(args['name'] ?? 'a Dask cluster')}`,
    execute: args =>
      attempt(`Adapt ${nameOf(args)}`, async () => {
        const name = nameOf(args);
        const result = await InputDialog.getText({
          title: `Adapt ${name} between how many workers (MIN:MAX)?`,
          text: '1:4'
        });
        if (!result.button.accept || result.value === null) {
          return;
        }
        const range = parseAdapt(result.value);
        if (typeof range === 'string') {
          throw new Error(range);
        }
        model.upsert(await api.scale(name, { adapt: `${range.minimum}:${range.maximum}` }));
        Notification.info(`${name} adapts between ${range.minimum} and ${range.maximum} workers`, {
          autoClose: 3000
        });
      })
  });
  add(CommandIDs.copyClientCode, {
    label: args => `Copy client code of ${String(args['name'] ?? 'a Dask cluster')}`,
    execute: args =>
      attempt(`Copy the client code of ${nameOf(args)}`, async () => {
        const name = nameOf(args);
        const address = schedulerAddress(await recordOf(deps, name));
        if (!address) {
          throw new Error(`${name} has no scheduler address (yet)`);
        }
        await copyText(clientCode(address));
        Notification.info(`Copied the client code of ${name}`, { autoClose: 2000 });
      })
  });
  add(CommandIDs.openOutput, {
    label: args => `Open the output notebook of ${String(args['name'] ?? 'a run')}`,
    execute: args =>
      attempt(`Open the output of ${nameOf(args)}`, async () => {
        const name = nameOf(args);
        const listing = await api.files(name);
        if (!listing.notebook) {
          throw new Error(`${name} has no executed notebook in its run directory (yet)`);
        }
        await app.commands.execute('docmanager:open', { path: drivePath(name, listing.notebook) });
      })
  });
  for (const [id, paused] of [
    [CommandIDs.pause, true],
    [CommandIDs.resume, false]
  ] as const) {
    add(id, {
      label: args => `${paused ? 'Pause' : 'Resume'} the schedule ${String(args['name'] ?? '')}`,
      execute: args =>
        attempt(`${paused ? 'Pause' : 'Resume'} ${nameOf(args)}`, async () => {
          model.upsert(await api.setPaused(nameOf(args), paused));
          void deps.sync.fetchOne(nameOf(args));
        })
    });
  }
  add(CommandIDs.rollout, {
    label: args => `Roll out a new model to ${String(args['name'] ?? 'an endpoint')}`,
    execute: args =>
      attempt(`Roll out to ${nameOf(args)}`, async () => {
        const name = nameOf(args);
        const uri = await InputDialog.getText({
          title: `Roll out which model to ${name}? (model URI)`,
          placeholder: 'e.g. models:/churn/3 or s3://bucket/model'
        });
        if (!uri.button.accept || !uri.value) {
          return;
        }
        const canary = await InputDialog.getNumber({
          title: `Send what percent of ${name}'s requests to it first? (0: all at once)`,
          value: 0
        });
        if (!canary.button.accept) {
          return;
        }
        const percent = Math.round(canary.value ?? 0);
        if (!(percent >= 0 && percent < 100)) {
          throw new Error(`a canary takes 0 to 99 percent of the requests, not ${canary.value}`);
        }
        const change: { [key: string]: unknown } = { model_uri: uri.value };
        if (percent > 0) {
          change['canary'] = percent;
        }
        await api.rollout(name, { change });
        Notification.info(`Rolling out ${uri.value} to ${name}`, { autoClose: 3000 });
        void deps.sync.fetchOne(name);
      })
  });
}

export { detailId };
