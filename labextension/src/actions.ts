/**
 * What the panel does to one or many workloads: confirmations, bulk cancel and delete,
 * "clear finished", and the row context menu.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { CommandRegistry } from '@lumino/commands';
import { Menu } from '@lumino/widgets';

import { CLONE_COMMAND } from './clone';
import { isActive, isFinal } from './format';
import { errorMessage } from './handler';
import { notifyError } from './notify';
import type { WorkloadSync } from './sync';
import type { IWorkload } from './types';

/** The command the detail view registers (helper C, detail.tsx). */
export const OPEN_DETAIL_COMMAND = 'workbench:open-detail';

/** How many deletions or cancellations run at once. */
const CONCURRENCY = 4;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export async function confirm(title: string, body: string, label: string): Promise<boolean> {
  const result = await showDialog({
    title,
    body,
    buttons: [Dialog.cancelButton({ label: 'Keep' }), Dialog.warnButton({ label })]
  });
  return result.button.accept;
}

export function confirmCancel(w: IWorkload): Promise<boolean> {
  return confirm(
    `Cancel ${w.name}?`,
    `It stops now (${w.status}); its record, logs and outputs stay until you delete them.`,
    'Cancel workload'
  );
}

/** Run `action` on every name, a few at a time; the names that failed, with why. */
export async function eachLimited(
  names: readonly string[],
  action: (name: string) => Promise<void>,
  limit = CONCURRENCY
): Promise<{ name: string; error: string }[]> {
  const failures: { name: string; error: string }[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const name = names[next++];
      try {
        await action(name);
      } catch (error) {
        failures.push({ name, error: errorMessage(error) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, names.length) }, worker));
  return failures;
}

function report(what: string, done: number, failures: { name: string; error: string }[]): void {
  if (failures.length) {
    const first = failures[0];
    notifyError(
      `${what}: ${failures.length} of ${done + failures.length} failed`,
      `${first.name}: ${first.error}`
    );
  } else if (done) {
    Notification.info(`${what}: ${plural(done, 'workload')}`, { autoClose: 3000 });
  }
}

/** Delete workloads (cancelling the active ones first, as the server does with force). */
export async function deleteMany(
  sync: WorkloadSync,
  workloads: readonly IWorkload[]
): Promise<void> {
  const names = workloads.map(w => w.name);
  const failures = await eachLimited(names, async name => {
    const held = sync.model.get(name);
    await sync.api.remove(name, held ? isActive(held.status) : false);
    sync.model.remove(name);
  });
  report('Deleted', names.length - failures.length, failures);
}

export async function cancelMany(
  sync: WorkloadSync,
  workloads: readonly IWorkload[]
): Promise<void> {
  const names = workloads.filter(w => isActive(w.status)).map(w => w.name);
  const failures = await eachLimited(names, async name => {
    sync.model.upsert(await sync.api.cancel(name));
  });
  report('Cancelled', names.length - failures.length, failures);
}

/** "Clear finished": confirm, then delete every finished workload among `shown`. */
export async function clearFinished(
  sync: WorkloadSync,
  shown: readonly IWorkload[]
): Promise<void> {
  const finished = shown.filter(w => isFinal(w.status));
  if (!finished.length) {
    return;
  }
  const ok = await confirm(
    `Clear ${plural(finished.length, 'finished workload')}?`,
    `This deletes the records and run directories (logs, outputs) of the ${
      finished.length
    } succeeded, failed or cancelled ${
      finished.length === 1 ? 'workload' : 'workloads'
    } shown in the list.`,
    `Delete ${finished.length}`
  );
  if (ok) {
    await deleteMany(sync, finished);
  }
}

export async function deleteSelected(
  sync: WorkloadSync,
  chosen: readonly IWorkload[]
): Promise<boolean> {
  if (!chosen.length) {
    return false;
  }
  const active = chosen.filter(w => isActive(w.status)).length;
  const ok = await confirm(
    `Delete ${plural(chosen.length, 'workload')}?`,
    `This removes their records and run directories (logs, outputs)${
      active ? `; ${plural(active, 'active one')} will be cancelled first` : ''
    }.`,
    `Delete ${chosen.length}`
  );
  if (ok) {
    await deleteMany(sync, chosen);
  }
  return ok;
}

export async function cancelSelected(
  sync: WorkloadSync,
  chosen: readonly IWorkload[]
): Promise<boolean> {
  const active = chosen.filter(w => isActive(w.status));
  if (!active.length) {
    return false;
  }
  const ok = await confirm(
    `Cancel ${plural(active.length, 'workload')}?`,
    `They stop now; records, logs and outputs stay until you delete them.`,
    `Cancel ${active.length}`
  );
  if (ok) {
    await cancelMany(sync, active);
  }
  return ok;
}

export interface IMenuHandlers {
  open: (w: IWorkload) => void;
  logs: (w: IWorkload) => void;
  cancel: (w: IWorkload) => void;
  remove: (w: IWorkload) => void;
  clone: (w: IWorkload) => void;
}

/** The row context menu: open details, logs, cancel, delete, clone. */
export function rowMenu(w: IWorkload, handlers: IMenuHandlers, outer: CommandRegistry): Menu {
  const commands = new CommandRegistry();
  const item = (id: string, label: string, run: () => void, enabled = true): void => {
    commands.addCommand(id, { label, execute: run, isEnabled: () => enabled });
  };
  item(
    'open',
    `Open details of ${w.name}`,
    () => handlers.open(w),
    outer.hasCommand(OPEN_DETAIL_COMMAND)
  );
  item('logs', 'Show logs', () => handlers.logs(w));
  item('cancel', 'Cancel…', () => handlers.cancel(w), isActive(w.status));
  item(
    'clone',
    'Clone into the launch form…',
    () => handlers.clone(w),
    outer.hasCommand(CLONE_COMMAND)
  );
  item('delete', 'Delete…', () => handlers.remove(w));
  const menu = new Menu({ commands });
  menu.addClass('jp-WorkbenchPanel-menu');
  for (const command of ['open', 'logs', 'cancel', 'clone', 'delete']) {
    menu.addItem({ command });
  }
  return menu;
}

/** The launch menu: one item per kind. */
export function launchMenu(entries: readonly { label: string; run: () => void }[]): Menu {
  const commands = new CommandRegistry();
  const menu = new Menu({ commands });
  menu.addClass('jp-WorkbenchPanel-launchMenu');
  entries.forEach((entry, i) => {
    commands.addCommand(`launch-${i}`, { label: entry.label, execute: entry.run });
    menu.addItem({ command: `launch-${i}` });
  });
  return menu;
}
