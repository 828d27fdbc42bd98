/**
 * The "Launch" dialog: a form per kind generated from the served JSON Schema,
 * with a profile preset dropdown; a 400 reopens it with the server's message.
 */
import { Dialog, Notification, ReactWidget, showDialog } from '@jupyterlab/apputils';
import { FormComponent, type IFormComponentProps } from '@jupyterlab/ui-components';
import type { ReadonlyJSONObject } from '@lumino/coreutils';
import validator from '@rjsf/validator-ajv8';
import React from 'react';

import type { WorkbenchAPI } from './api';
import { kindNoun, launchTitle } from './format';
import { APIError, errorMessage } from './handler';
import type { WorkloadModel } from './model';
import { notifyError } from './notify';
import { applyProfile, formSchema, launchBody, uiSchema } from './schema';
import type { Preferences } from './settings';
import type { IBackends, IJSONSchema, IProfile, IWorkload, Kind } from './types';

type FormData = { [key: string]: unknown };
type Props = IFormComponentProps;

/** What the form is generated from, fetched when the dialog opens. */
export interface ILaunchSources {
  schema: IJSONSchema;
  profiles: { [name: string]: IProfile };
  backends: IBackends | null;
}

export interface ILaunchDeps {
  api: WorkbenchAPI;
  model: WorkloadModel;
  preferences: Preferences;
}

/** How long the form waits for the backend probe before opening without its labels. */
const BACKENDS_WAIT_MS = 2000;

async function loadSources(api: WorkbenchAPI, kind: Kind): Promise<ILaunchSources> {
  const abort = new AbortController();
  const timer = window.setTimeout(() => abort.abort(), BACKENDS_WAIT_MS);
  const [schemas, profiles, backends] = await Promise.all([
    api.schemas(),
    api.profiles().catch(() => ({})),
    api.backends(abort.signal).catch(() => null)
  ]).finally(() => window.clearTimeout(timer));
  const schema = schemas[kind];
  if (!schema) {
    throw new Error(`the server has no schema for ${kind} workloads yet`);
  }
  return { schema, profiles, backends };
}

/** The dialog body: an optional error, an "all fields" switch and the form. */
class LaunchForm extends ReactWidget implements Dialog.IBodyWidget<FormData> {
  constructor(
    private readonly _kind: Kind,
    private readonly _sources: ILaunchSources,
    private _data: FormData,
    private readonly _error: string | null
  ) {
    super();
    this.addClass('jp-WorkbenchLaunch');
  }

  getValue(): FormData {
    return this._data;
  }

  protected render(): JSX.Element {
    const schema = formSchema(this._sources.schema, this._kind, {
      advanced: this._advanced,
      profiles: this._sources.profiles,
      backends: this._sources.backends
    });
    return (
      <>
        {this._error && <div className="jp-WorkbenchLaunch-error">{this._error}</div>}
        <label className="jp-WorkbenchLaunch-advanced">
          <input
            type="checkbox"
            checked={this._advanced}
            onChange={e => {
              this._advanced = e.target.checked;
              this.update();
            }}
          />{' '}
          Show all fields
        </label>
        <FormComponent
          schema={schema as Props['schema']}
          uiSchema={uiSchema(this._kind, this._sources.backends) as Props['uiSchema']}
          formData={this._data as ReadonlyJSONObject}
          validator={validator as unknown as Props['validator']}
          compact
          onChange={e => this._onChange((e.formData ?? {}) as FormData)}
        />
      </>
    );
  }

  private _onChange(next: FormData): void {
    const profile = next['profile'];
    if (typeof profile === 'string' && profile !== this._data['profile']) {
      next = applyProfile(next, this._sources.profiles[profile]);
      this._data = next;
      this.update();
      return;
    }
    this._data = next;
  }

  private _advanced = false;
}

/** The form's first values: the backend from the settings, plus what the caller gives. */
function initialData(preferences: Preferences, given: FormData): FormData {
  const backend = preferences.value.defaultBackend;
  return backend ? { backend, ...given } : { ...given };
}

/**
 * Show the launch form for `kind` until the launch succeeds or the user cancels.
 * Resolves to the new workload, or null.
 */
export async function launchDialog(
  kind: Kind,
  deps: ILaunchDeps,
  given: FormData = {}
): Promise<IWorkload | null> {
  let sources: ILaunchSources;
  try {
    sources = await loadSources(deps.api, kind);
  } catch (error) {
    notifyError(launchTitle(kind), errorMessage(error));
    return null;
  }
  let data = initialData(deps.preferences, given);
  let error: string | null = null;
  for (;;) {
    const result = await showDialog<FormData>({
      title: launchTitle(kind),
      body: new LaunchForm(kind, sources, data, error),
      buttons: [
        Dialog.cancelButton(),
        Dialog.okButton({ label: kind === 'serve' ? 'Serve' : 'Launch' })
      ],
      focusNodeSelector: 'input, textarea'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    data = result.value;
    try {
      return await launchAndTrack(deps, launchBody(kind, data));
    } catch (failure) {
      if (failure instanceof APIError && failure.status === 400) {
        error = failure.detail;
        continue;
      }
      notifyError(launchTitle(kind), errorMessage(failure));
      return null;
    }
  }
}

/** POST a spec, put the record in the model and say so; errors propagate. */
export async function launchAndTrack(deps: ILaunchDeps, body: FormData): Promise<IWorkload> {
  const record = await deps.api.launch(body);
  deps.model.upsert(record);
  deps.model.markLaunched(record.name);
  Notification.info(`Launched ${kindNoun(record.kind)} ${record.name}`, { autoClose: 3000 });
  return record;
}
