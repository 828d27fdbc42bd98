/**
 * "Clone": open the launch form of a workload's kind, prefilled with its spec
 * (`GET workloads/NAME/spec`), to edit and launch as a new workload.
 */
import type { JupyterFrontEnd } from '@jupyterlab/application';

import { kindNoun } from './format';
import { errorMessage, requestAPI } from './handler';
import { type ILaunchDeps, launchDialog } from './launch';
import { notifyError } from './notify';
import { KINDS, type IWorkload, type Kind } from './types';

export const CLONE_COMMAND = 'workbench:clone';

/** What `GET workloads/NAME/spec` answers: the launchable spec, without name or schedule run. */
export interface ILaunchableSpec {
  kind: Kind;
  spec: { [key: string]: unknown };
}

export function fetchSpec(deps: ILaunchDeps, name: string): Promise<ILaunchableSpec> {
  return requestAPI<ILaunchableSpec>(`workloads/${encodeURIComponent(name)}/spec`, {
    settings: deps.api.settings
  });
}

/** The form's first values from a spec: no name (the server picks a new one), no kind. */
export function cloneFormData(spec: { [key: string]: unknown }): { [key: string]: unknown } {
  const out: { [key: string]: unknown } = {};
  for (const [key, value] of Object.entries(spec)) {
    if (key === 'kind' || key === 'name' || value === null || value === undefined) {
      continue;
    }
    out[key] = value;
  }
  return out;
}

/** Open the launch form prefilled from workload `name`; resolves to the new workload or null. */
export async function cloneWorkload(deps: ILaunchDeps, name: string): Promise<IWorkload | null> {
  let answer: ILaunchableSpec;
  try {
    answer = await fetchSpec(deps, name);
  } catch (error) {
    notifyError(`Clone ${name}`, errorMessage(error));
    return null;
  }
  const kind = answer.kind;
  if (!(KINDS as readonly string[]).includes(kind)) {
    notifyError(`Clone ${name}`, `the server answered an unknown kind ${JSON.stringify(kind)}`);
    return null;
  }
  return launchDialog(kind, deps, cloneFormData(answer.spec ?? {}), {
    title: `Clone ${name} (${kindNoun(kind)})`
  });
}

/**
 * Register `workbench:clone` (args `{id}` or `{name}`): the launch form, prefilled.
 * Wired from index.ts: `registerClone(app, { api, model, preferences })`.
 */
export function registerClone(app: JupyterFrontEnd, deps: ILaunchDeps): void {
  app.commands.addCommand(CLONE_COMMAND, {
    label: args => `Clone ${String(args['id'] ?? args['name'] ?? 'workload')}…`,
    caption: 'Open the launch form filled with this workload’s spec',
    execute: args => {
      const name = args['id'] ?? args['name'];
      if (typeof name !== 'string' || !name) {
        throw new Error('workbench:clone needs a workload id (args.id)');
      }
      return cloneWorkload(deps, name);
    }
  });
}
