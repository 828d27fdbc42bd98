/**
 * What a notification says about an ended workload, and where its executed notebook is.
 * Pure: no DOM, no server calls (the tests use it directly).
 */
import { kindLabel } from './format';
import { type ITransition, runSeconds } from './model';
import type { IWorkload } from './types';
import { formatDuration } from './usage';

/** The executed notebook's name in a notebook run's directory. */
export const OUTPUT_NOTEBOOK = 'output.ipynb';

export type Outcome = 'succeeded' | 'failed' | 'timed out' | 'cancelled';

/** How it ended; a run stopped at its time limit failed with a message saying "timed out". */
export function outcomeOf(transition: ITransition): Outcome {
  if (transition.to === 'failed') {
    return /^timed out\b/.test(transition.message) ? 'timed out' : 'failed';
  }
  return transition.to === 'cancelled' ? 'cancelled' : 'succeeded';
}

/** "Pod train-3 failed after 2m 5s (exit code 1): boom". */
export function endMessage(transition: ITransition): string {
  const label = `${kindLabel(transition.kind)} ${transition.name}`;
  const outcome = outcomeOf(transition);
  const verb = outcome === 'cancelled' ? 'was cancelled' : outcome;
  let text = `${label} ${verb} after ${formatDuration(runSeconds(transition))}`;
  if (outcome === 'failed' && transition.exitCode !== null) {
    text += ` (exit code ${transition.exitCode})`;
  }
  if ((outcome === 'failed' || outcome === 'timed out') && transition.message) {
    text += `: ${transition.message}`;
  }
  return text;
}

/**
 * The executed notebook of a notebook run, as a path under the server's root (what Lab can
 * open), or null: another kind, a schedule, a run directory elsewhere or behind a URL.
 */
export function outputNotebookPath(workload: IWorkload, serverRoot: string): string | null {
  if (workload.kind !== 'notebook' || workload.spec.schedule) {
    return null;
  }
  const recorded = workload.info?.['location'];
  let folder =
    typeof recorded === 'string' && recorded
      ? recorded
      : workload.backend === 'local'
        ? workload.run_dir
        : '';
  folder = folder.replace(/^file:\/\//, '');
  const root = serverRoot.replace(/\/+$/, '');
  if (!folder.startsWith('/') || !root.startsWith('/')) {
    return null;
  }
  if (folder !== root && !folder.startsWith(`${root}/`)) {
    return null;
  }
  const relative = folder.slice(root.length).replace(/^\/+|\/+$/g, '');
  return relative ? `${relative}/${OUTPUT_NOTEBOOK}` : OUTPUT_NOTEBOOK;
}

/**
 * How an ended notebook run's notification opens its executed notebook: the file under the
 * server's root when it is there, else the read-only copy from the run directory (through
 * `workbench:open-output`); null for other kinds, schedules and runs that did not succeed.
 */
export function outputNotebookAction(
  workload: IWorkload,
  status: string,
  serverRoot: string
): { command: string; args: { path: string } | { name: string } } | null {
  const path = outputNotebookPath(workload, serverRoot);
  if (path) {
    return { command: 'docmanager:open', args: { path } };
  }
  if (workload.kind !== 'notebook' || workload.spec.schedule || status !== 'succeeded') {
    return null;
  }
  return { command: 'workbench:open-output', args: { name: workload.name } };
}
