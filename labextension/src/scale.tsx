/**
 * "Scale" a Dask cluster: a dialog whose field refuses what is not a worker count
 * (empty, -3, 2.5) with the reason next to it, then `POST workloads/NAME/scale`.
 */
import { Dialog, Notification, ReactWidget, showDialog } from '@jupyterlab/apputils';
import React from 'react';

import { effectiveSpec } from './format';
import { parseCount } from './formerrors';
import { errorMessage } from './handler';
import { notifyError } from './notify';
import type { WorkloadSync } from './sync';
import type { IWorkload } from './types';

class ScaleBody extends ReactWidget implements Dialog.IBodyWidget<string> {
  constructor(
    private readonly _name: string,
    private _text: string,
    private readonly _error: string | null
  ) {
    super();
    this.addClass('jp-WorkbenchScale');
  }

  getValue(): string {
    return this._text;
  }

  protected render(): JSX.Element {
    const id = `workbench-scale-${this._name}`;
    return (
      <div className="jp-WorkbenchScale-field">
        <label htmlFor={id}>Workers</label>
        <input
          id={id}
          className="jp-mod-styled"
          type="text"
          inputMode="numeric"
          defaultValue={this._text}
          aria-invalid={this._error ? true : undefined}
          aria-describedby={this._error ? `${id}-error` : undefined}
          onChange={e => (this._text = e.target.value)}
        />
        {this._error && (
          <div id={`${id}-error`} className="jp-WorkbenchScale-error" role="alert">
            {this._error}
          </div>
        )}
      </div>
    );
  }
}

/** Ask for a worker count until it is one (or the user cancels), then scale. */
export async function scaleCluster(sync: WorkloadSync, w: IWorkload): Promise<void> {
  let text = String(effectiveSpec(w).workers ?? 2);
  let error: string | null = null;
  for (;;) {
    const result = await showDialog<string>({
      title: `Scale ${w.name} to how many workers?`,
      body: new ScaleBody(w.name, text, error),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Scale' })],
      focusNodeSelector: 'input'
    });
    if (!result.button.accept || result.value === null) {
      return;
    }
    text = result.value;
    const count = parseCount(text);
    if (count.error !== null) {
      error = count.error;
      continue;
    }
    try {
      sync.model.upsert(await sync.api.scale(w.name, { workers: count.value }));
      Notification.info(`Scaling ${w.name} to ${count.value} workers`, { autoClose: 3000 });
    } catch (failure) {
      notifyError(`Scale ${w.name}`, errorMessage(failure));
    }
    return;
  }
}
