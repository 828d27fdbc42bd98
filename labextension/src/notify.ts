/**
 * Notifications: a workload finished or failed; a launch or an action went wrong.
 */
import { Notification } from '@jupyterlab/apputils';
import type { CommandRegistry } from '@lumino/commands';

import { kindLabel } from './format';
import { type ITransition, shouldNotify, type WorkloadModel } from './model';
import type { Preferences } from './settings';

export const LOGS_COMMAND = 'workbench:logs';

/** Show an error in a notification; `what` says what was tried ("Cancel pod-x"). */
export function notifyError(what: string, message: string): void {
  Notification.error(`${what}: ${message}`, { autoClose: false });
}

/** Watches the model and notifies about finished workloads, as the settings say. */
export class Notifier {
  constructor(
    model: WorkloadModel,
    private readonly _preferences: Preferences,
    private readonly _commands: CommandRegistry
  ) {
    model.finished.connect(this._onFinished, this);
  }

  private _onFinished(_: WorkloadModel, transition: ITransition): void {
    if (
      this._notified.has(transition.name) ||
      !shouldNotify(transition, this._preferences.value.notify)
    ) {
      return;
    }
    this._notified.add(transition.name);
    const label = `${kindLabel(transition.kind)} ${transition.name}`;
    const actions = [
      {
        label: 'Show logs',
        callback: () => void this._commands.execute(LOGS_COMMAND, { name: transition.name })
      }
    ];
    switch (transition.to) {
      case 'succeeded':
        Notification.success(`${label} succeeded`, { autoClose: 8000, actions });
        break;
      case 'failed': {
        const code = transition.exitCode !== null ? ` (exit code ${transition.exitCode})` : '';
        const why = transition.message ? `: ${transition.message}` : '';
        Notification.error(`${label} failed${code}${why}`, { autoClose: false, actions });
        break;
      }
      default:
        Notification.info(`${label} was cancelled`, { autoClose: 5000 });
    }
  }

  private _notified = new Set<string>();
}
