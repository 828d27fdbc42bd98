/**
 * Notifications: a workload ended (succeeded, failed, timed out, cancelled); a launch or an
 * action went wrong.
 *
 * Every workload the page follows is a candidate, whoever launched it (the sidebar, a
 * kernel's `%%pod` or `%batch`, the CLI): the settings say whose ("all", "mine" for the
 * sidebar's own launches, or "off") and how long a run must have lasted (`notifyAfter`).
 */
import { Notification } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import type { CommandRegistry } from '@lumino/commands';

import { endMessage, outcomeOf, outputNotebookAction } from './ending';
import { type ITransition, shouldNotify, type WorkloadModel } from './model';
import type { Preferences } from './settings';

export const LOGS_COMMAND = 'workbench:logs';
export const OPEN_COMMAND = 'docmanager:open';

/** Show an error in a notification; `what` says what was tried ("Cancel pod-x"). */
export function notifyError(what: string, message: string): void {
  Notification.error(`${what}: ${message}`, { autoClose: false });
}

/** Watches the model and notifies about ended workloads, as the settings say. */
export class Notifier {
  constructor(
    private readonly _model: WorkloadModel,
    private readonly _preferences: Preferences,
    private readonly _commands: CommandRegistry,
    private readonly _serverRoot: string = PageConfig.getOption('serverRoot')
  ) {
    _model.finished.connect(this._onFinished, this);
  }

  private _onFinished(_: WorkloadModel, transition: ITransition): void {
    const { notify, notifyAfter } = this._preferences.value;
    const key = `${transition.name}@${transition.created}`; // a name may be used again
    if (this._notified.has(key) || !shouldNotify(transition, notify, notifyAfter)) {
      return;
    }
    this._notified.add(key);
    const name = transition.name;
    const actions: Notification.IAction[] = [
      {
        label: 'Open logs',
        caption: `The output of ${name}`,
        callback: () => void this._commands.execute(LOGS_COMMAND, { name })
      }
    ];
    const workload = this._model.get(name);
    const output = workload
      ? outputNotebookAction(workload, transition.to, this._serverRoot)
      : null;
    if (output) {
      actions.push({
        label: 'Open output notebook',
        caption: 'path' in output.args ? output.args.path : `The executed notebook of ${name}`,
        callback: () => void this._commands.execute(output.command, output.args)
      });
    }
    const text = endMessage(transition);
    switch (outcomeOf(transition)) {
      case 'succeeded':
        Notification.success(text, { autoClose: 8000, actions });
        break;
      case 'cancelled':
        Notification.info(text, { autoClose: 5000, actions });
        break;
      default:
        Notification.error(text, { autoClose: false, actions });
    }
  }

  private _notified = new Set<string>();
}
