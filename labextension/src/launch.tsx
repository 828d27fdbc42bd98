/**
 * The "Launch" dialog: a form per kind generated from the served JSON Schema,
 * with a profile preset dropdown; a 400 reopens it with every bad field marked
 * next to itself (`aria-invalid`, the message in the form's words).
 */
import { Dialog, Notification, ReactWidget, showDialog } from '@jupyterlab/apputils';
import { FormComponent, type IFormComponentProps } from '@jupyterlab/ui-components';
import type { ReadonlyJSONObject } from '@lumino/coreutils';
import validator from '@rjsf/validator-ajv8';
import React, { useEffect, useRef } from 'react';

import type { WorkbenchAPI } from './api';
import { kindNoun, launchTitle } from './format';
import {
  errorSummary,
  extraErrors,
  fieldLabels,
  formErrors,
  hiddenErrors,
  type IFormErrors
} from './formerrors';
import { APIError, errorMessage } from './handler';
import type { WorkloadModel } from './model';
import { notifyError } from './notify';
import { applyProfile, BASIC_FIELDS, formSchema, launchBody, uiSchema } from './schema';
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

/** The form's first field gets the focus, not the "Show all fields" switch. */
const FIRST_FIELD =
  '.jp-WorkbenchLaunch-form input, .jp-WorkbenchLaunch-form select, ' +
  '.jp-WorkbenchLaunch-form textarea';

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

/**
 * Name every input after its field (rjsf's compact layout labels them with a `div`) and
 * mark the bad ones, pointing at the message rjsf renders under them.
 */
function labelInputs(
  root: HTMLElement,
  labels: { [id: string]: string },
  errors: IFormErrors | null
): void {
  const bad = new Set((errors?.fields ?? []).map(e => e.id));
  for (const input of Array.from(
    root.querySelectorAll<HTMLElement>(
      'input[id^="root_"], select[id^="root_"], textarea[id^="root_"]'
    )
  )) {
    const id = input.id;
    const label = labels[id] ?? labels[id.replace(/_\d+$/, '')];
    if (label) {
      input.setAttribute('aria-label', label);
    }
    if (bad.has(id)) {
      input.setAttribute('aria-invalid', 'true');
      input.setAttribute('aria-describedby', `${id}__error`);
    } else {
      input.removeAttribute('aria-invalid');
    }
  }
}

function FormBody(props: {
  schema: { [key: string]: unknown };
  labels: { [id: string]: string };
  errors: IFormErrors | null;
  children: React.ReactNode;
}): JSX.Element {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const node = ref.current;
    if (!node) {
      return;
    }
    // rjsf adds inputs by itself too (array items, a profile's fields): label those as well
    const label = (): void => labelInputs(node, props.labels, props.errors);
    label();
    const observer = new MutationObserver(label);
    observer.observe(node, { childList: true, subtree: true });
    return () => observer.disconnect();
  });
  return (
    <div className="jp-WorkbenchLaunch-form" ref={ref}>
      {props.children}
    </div>
  );
}

/** The dialog body: the errors, the form and an "all fields" switch. */
class LaunchForm extends ReactWidget implements Dialog.IBodyWidget<FormData> {
  constructor(
    private readonly _kind: Kind,
    private readonly _sources: ILaunchSources,
    private _data: FormData,
    private readonly _errors: IFormErrors | null,
    private _advanced: boolean
  ) {
    super();
    this.addClass('jp-WorkbenchLaunch');
  }

  getValue(): FormData {
    return this._data;
  }

  get advanced(): boolean {
    return this._advanced;
  }

  protected render(): JSX.Element {
    const schema = formSchema(this._sources.schema, this._kind, {
      advanced: this._advanced,
      profiles: this._sources.profiles,
      backends: this._sources.backends
    });
    const errors = this._errors;
    const summary = errors ? errorSummary(errors) : '';
    return (
      <>
        {summary && (
          <div className="jp-WorkbenchLaunch-error" role="alert">
            {summary}
          </div>
        )}
        <FormBody schema={schema} labels={fieldLabels(schema)} errors={errors}>
          <FormComponent
            schema={schema as Props['schema']}
            uiSchema={uiSchema(this._kind, this._sources.backends) as Props['uiSchema']}
            formData={this._data as ReadonlyJSONObject}
            validator={validator as unknown as Props['validator']}
            extraErrors={errors ? (extraErrors(errors.fields) as Props['extraErrors']) : undefined}
            showErrorList={false}
            compact
            onChange={e => this._onChange((e.formData ?? {}) as FormData)}
          />
        </FormBody>
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
}

/** The form's first values: the backend from the settings, plus what the caller gives. */
function initialData(preferences: Preferences, given: FormData): FormData {
  const backend = preferences.value.defaultBackend;
  return backend ? { backend, ...given } : { ...given };
}

/** Whether prefilled data sets a field the short form does not show. */
export function needsAllFields(kind: Kind, data: FormData): boolean {
  return Object.keys(data).some(
    key => key !== 'kind' && !BASIC_FIELDS[kind].includes(key) && data[key] !== null
  );
}

export interface ILaunchOptions {
  /** The dialog's title (default "Launch pod", …). */
  title?: string;
}

/**
 * Show the launch form for `kind` until the launch succeeds or the user cancels.
 * Resolves to the new workload, or null.
 */
export async function launchDialog(
  kind: Kind,
  deps: ILaunchDeps,
  given: FormData = {},
  options: ILaunchOptions = {}
): Promise<IWorkload | null> {
  let sources: ILaunchSources;
  try {
    sources = await loadSources(deps.api, kind);
  } catch (error) {
    notifyError(launchTitle(kind), errorMessage(error));
    return null;
  }
  let data = initialData(deps.preferences, given);
  let errors: IFormErrors | null = null;
  let advanced = needsAllFields(kind, data);
  for (;;) {
    const body = new LaunchForm(kind, sources, data, errors, advanced);
    const result = await showDialog<FormData>({
      title: options.title ?? launchTitle(kind),
      body,
      buttons: [
        Dialog.cancelButton(),
        Dialog.okButton({ label: kind === 'serve' ? 'Serve' : 'Launch' })
      ],
      // the first bad field after a refused launch, else the form's first field
      focusNodeSelector: errors?.fields.length ? `#${errors.fields[0].id}` : FIRST_FIELD
    });
    advanced = body.advanced;
    if (!result.button.accept || !result.value) {
      return null;
    }
    data = result.value;
    try {
      return await launchAndTrack(deps, launchBody(kind, data));
    } catch (failure) {
      if (failure instanceof APIError && failure.status === 400) {
        const all = formSchema(sources.schema, kind, {
          advanced: true,
          profiles: sources.profiles,
          backends: sources.backends
        });
        errors = formErrors(all, failure.body, failure.detail);
        if (hiddenErrors(errors.fields, BASIC_FIELDS[kind])) {
          advanced = true;
        }
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
