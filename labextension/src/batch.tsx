/**
 * "Run as batch job…": a dialog with the notebook's declared parameters pre-filled and typed,
 * resources, a name (by default from the notebook's name), the backend, and a schedule
 * (Kubernetes only); it launches a notebook workload. Bad fields are marked where they are.
 */
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import React from 'react';

import '../style/detail.css';
import {
  batchBody,
  fieldKind,
  type IBatchForm,
  type IFieldError,
  initialForm,
  type INotebookParameter,
  type INotebookParameters,
  serverFieldErrors
} from './batchparams';
import { APIError, errorMessage } from './handler';
import { type ILaunchDeps, launchAndTrack } from './launch';
import { notifyError } from './notify';
import type { IBackends, IWorkload } from './types';

/** How long the dialog waits for the backend probe before opening without it. */
const BACKENDS_WAIT_MS = 2000;

function fieldId(field: string): string {
  return `jp-WorkbenchBatch-${field.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

/**
 * Focus `input` when it is the form's first field to fix, as it mounts. The dialog's own
 * `focusNodeSelector` finds nothing while the body has not rendered yet (a loaded machine):
 * the field must not depend on which comes first.
 */
function focusIfFirstInvalid(input: HTMLInputElement | null): void {
  const form = input?.closest('.jp-WorkbenchBatch');
  if (input && form?.querySelector('input[aria-invalid="true"]') === input) {
    input.focus();
  }
}

class BatchForm extends ReactWidget implements Dialog.IBodyWidget<IBatchForm> {
  constructor(
    private _form: IBatchForm,
    private readonly _declared: INotebookParameter[],
    private readonly _backends: string[],
    private readonly _errors: IFieldError[],
    private readonly _message: string
  ) {
    super();
    this.addClass('jp-WorkbenchBatch');
  }

  getValue(): IBatchForm {
    return this._form;
  }

  private _set(patch: Partial<IBatchForm>, rerender = false): void {
    this._form = { ...this._form, ...patch };
    if (rerender) {
      this.update();
    }
  }

  private _input(
    field: string,
    label: string,
    value: string,
    onChange: (value: string) => void,
    extra: { placeholder?: string; inputMode?: 'numeric' | 'decimal' | 'text'; help?: string } = {}
  ): JSX.Element {
    const id = fieldId(field);
    const error = this._errors.find(e => e.field === field);
    const describedBy = [error ? `${id}-error` : '', extra.help ? `${id}-help` : '']
      .filter(Boolean)
      .join(' ');
    return (
      <React.Fragment key={field}>
        <label htmlFor={id}>{label}</label>
        <input
          id={id}
          className="jp-mod-styled"
          defaultValue={value}
          placeholder={extra.placeholder}
          inputMode={extra.inputMode}
          data-field={field}
          aria-invalid={error ? true : undefined}
          aria-describedby={describedBy || undefined}
          ref={error ? focusIfFirstInvalid : undefined}
          onChange={event => onChange(event.target.value)}
        />
        {extra.help && (
          <span id={`${id}-help`} className="jp-WorkbenchBatch-help">
            {extra.help}
          </span>
        )}
        {error && (
          <span id={`${id}-error`} className="jp-WorkbenchBatch-fieldError">
            {error.message}
          </span>
        )}
      </React.Fragment>
    );
  }

  private _parameter(parameter: INotebookParameter): JSX.Element {
    const field = `parameters.${parameter.name}`;
    const kind = fieldKind(parameter.type);
    const value = this._form.values[parameter.name];
    const setValue = (next: string | boolean): void =>
      this._set({ values: { ...this._form.values, [parameter.name]: next } });
    const label = `${parameter.name} (${parameter.type || 'any'})`;
    if (kind === 'bool') {
      const id = fieldId(field);
      return (
        <React.Fragment key={field}>
          <label htmlFor={id}>{label}</label>
          <input
            id={id}
            type="checkbox"
            data-field={field}
            defaultChecked={value === true}
            onChange={event => setValue(event.target.checked)}
          />
        </React.Fragment>
      );
    }
    return this._input(field, label, String(value ?? ''), setValue, {
      inputMode: kind === 'int' ? 'numeric' : kind === 'float' ? 'decimal' : 'text',
      help: parameter.help || (kind === 'list' || kind === 'dict' ? 'JSON' : undefined),
      placeholder: kind === 'any' ? 'None' : undefined
    });
  }

  protected render(): JSX.Element {
    const form = this._form;
    const general = this._errors.filter(
      e =>
        !e.field.startsWith('parameters.') &&
        !['name', 'cpu', 'memory', 'gpus', 'schedule', 'backend'].includes(e.field)
    );
    return (
      <>
        {(this._message || general.length > 0) && (
          <div className="jp-WorkbenchBatch-error" role="alert">
            {[this._message, ...general.map(e => `${e.field}: ${e.message}`)]
              .filter(Boolean)
              .join('\n')}
          </div>
        )}
        <span>Notebook</span>
        <code className="jp-WorkbenchBatch-notebook">{form.notebook}</code>
        {this._input('name', 'Name', form.name, name => this._set({ name }), {
          help: 'lowercase letters, digits and dashes'
        })}
        <h4>Parameters</h4>
        {this._declared.length === 0 && (
          <span className="jp-WorkbenchBatch-help" style={{ gridColumn: '1 / -1' }}>
            This notebook has no cell tagged “parameters”.
          </span>
        )}
        {this._declared.map(parameter => this._parameter(parameter))}
        <h4>Resources</h4>
        {this._input('cpu', 'CPU', form.cpu, cpu => this._set({ cpu }), { placeholder: 'e.g. 2' })}
        {this._input('memory', 'Memory', form.memory, memory => this._set({ memory }), {
          placeholder: 'e.g. 4Gi'
        })}
        {this._input('gpus', 'GPUs', form.gpus, gpus => this._set({ gpus }), {
          inputMode: 'numeric',
          placeholder: '0'
        })}
        <label htmlFor={fieldId('backend')}>Backend</label>
        <select
          id={fieldId('backend')}
          className="jp-mod-styled"
          value={form.backend}
          onChange={event => this._set({ backend: event.target.value }, true)}
        >
          <option value="">default</option>
          {this._backends.map(name => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
        {form.backend === 'kubernetes' &&
          this._input('schedule', 'Schedule', form.schedule, schedule => this._set({ schedule }), {
            placeholder: 'cron, e.g. 0 3 * * *',
            help: 'empty: run once now'
          })}
      </>
    );
  }
}

/** The declared parameters; when they cannot be read, none and a line saying why. */
async function loadDeclared(
  deps: ILaunchDeps,
  notebook: string
): Promise<{ declared: INotebookParameters; warning: string }> {
  try {
    return { declared: await deps.api.notebookParameters(notebook), warning: '' };
  } catch (error) {
    const base = (notebook.split('/').pop() ?? notebook).replace(/\.ipynb$/, '');
    return {
      declared: { path: notebook, name: base, parameters: [] },
      warning: `the notebook's parameters could not be read: ${errorMessage(error)}`
    };
  }
}

async function loadBackends(deps: ILaunchDeps): Promise<IBackends | null> {
  const abort = new AbortController();
  const timer = window.setTimeout(() => abort.abort(), BACKENDS_WAIT_MS);
  try {
    return await deps.api.backends(abort.signal);
  } catch {
    return null;
  } finally {
    window.clearTimeout(timer);
  }
}

/** Show the batch dialog for `notebook` until it launches or the user cancels. */
export async function batchDialog(deps: ILaunchDeps, notebook: string): Promise<IWorkload | null> {
  const [{ declared, warning }, backends] = await Promise.all([
    loadDeclared(deps, notebook),
    loadBackends(deps)
  ]);
  const names = backends ? Object.keys(backends.backends) : ['local', 'kubernetes'];
  let form = initialForm(notebook, declared, deps.preferences.value.defaultBackend ?? '');
  let errors: IFieldError[] = [];
  let message = warning;
  for (;;) {
    const result = await showDialog<IBatchForm>({
      title: `Run ${notebook.split('/').pop()} as a batch job`,
      body: new BatchForm(form, declared.parameters, names, errors, message),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Run' })],
      // the first field, or after a refusal the first field to fix
      focusNodeSelector: errors.length ? 'input[aria-invalid="true"]' : 'input'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    form = result.value;
    const built = batchBody(form, declared.parameters);
    if ('errors' in built) {
      errors = built.errors;
      message = `${errors.length} field${errors.length === 1 ? '' : 's'} to fix`;
      continue;
    }
    try {
      return await launchAndTrack(deps, built.body);
    } catch (failure) {
      if (failure instanceof APIError && failure.status === 400) {
        errors = serverFieldErrors(failure.body);
        message = failure.detail;
        continue;
      }
      notifyError(`Run ${notebook} as a batch job`, errorMessage(failure));
      return null;
    }
  }
}
