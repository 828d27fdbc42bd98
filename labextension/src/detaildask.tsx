/**
 * The Dask part of a detail view: live and requested workers, the scheduler's address with a
 * "Copy client code" action, an adaptive range (MIN:MAX) and the dashboard's plots in Lab tabs.
 */
import type { CommandRegistry } from '@lumino/commands';
import React, { useState } from 'react';

import type { WorkbenchAPI } from './api';
import { liveWorkers, parseAdapt, schedulerAddress } from './detailstate';
import { DASK_PLOTS, daskPlotLink, effectiveSpec, formatScale } from './format';
import { errorMessage } from './handler';
import type { WorkloadModel } from './model';
import type { IWorkload } from './types';

interface IDeps {
  api: WorkbenchAPI;
  model: WorkloadModel;
  commands: CommandRegistry;
}

function AdaptForm(props: { workload: IWorkload; deps: IDeps }) {
  const { workload, deps } = props;
  const spec = effectiveSpec(workload);
  const [text, setText] = useState(
    spec.adapt
      ? `${spec.adapt.minimum}:${spec.adapt.maximum}`
      : `1:${Math.max(spec.workers ?? 2, 1)}`
  );
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const id = `jp-WorkbenchDetail-adapt-${workload.name}`;
  const apply = async (): Promise<void> => {
    const range = parseAdapt(text);
    if (typeof range === 'string') {
      setError(range);
      return;
    }
    setBusy(true);
    try {
      deps.model.upsert(
        await deps.api.scale(workload.name, { adapt: `${range.minimum}:${range.maximum}` })
      );
      setError('');
    } catch (failure) {
      setError(errorMessage(failure));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      className="jp-WorkbenchDetail-adapt"
      onSubmit={event => {
        event.preventDefault();
        void apply();
      }}
    >
      <label htmlFor={id}>Adapt between (MIN:MAX)</label>
      <input
        id={id}
        className="jp-mod-styled"
        value={text}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? `${id}-error` : undefined}
        aria-label={`Adaptive worker range of ${workload.name}`}
        onChange={event => setText(event.target.value)}
      />
      <button
        type="submit"
        className="jp-Button jp-mod-styled jp-mod-accept"
        disabled={busy}
        aria-label={`Adapt ${workload.name}`}
      >
        Adapt
      </button>
      {error && (
        <span id={`${id}-error`} className="jp-WorkbenchDetail-error" role="alert">
          {error}
        </span>
      )}
    </form>
  );
}

/** The Dask section of a cluster's detail view. */
export function DaskSection(props: { workload: IWorkload; deps: IDeps }) {
  const { workload, deps } = props;
  const live = liveWorkers(workload);
  const address = schedulerAddress(workload);
  const running = workload.status === 'running';
  const plots = DASK_PLOTS.filter(
    plot => !!daskPlotLink(workload, plot, deps.api.settings.baseUrl)
  );
  return (
    <section className="jp-WorkbenchDetail-section jp-WorkbenchDetail-dask" aria-label="Dask">
      <h3>Dask</h3>
      <dl className="jp-WorkbenchDetail-fields">
        <dt>Workers</dt>
        <dd className="jp-WorkbenchDetail-workers">
          {live === null ? 'live count not reported' : `${live} live`}
          {formatScale(effectiveSpec(workload)) &&
            ` (asked: ${formatScale(effectiveSpec(workload))})`}
        </dd>
        <dt>Scheduler</dt>
        <dd>
          <code className="jp-WorkbenchDetail-scheduler">{address ?? '–'}</code>
          {address && running && (
            <button
              type="button"
              className="jp-Button jp-mod-styled jp-mod-reject"
              aria-label={`Copy client code of ${workload.name}`}
              onClick={() =>
                void deps.commands.execute('workbench:copy-client-code', { name: workload.name })
              }
            >
              Copy client code
            </button>
          )}
        </dd>
      </dl>
      {running && <AdaptForm workload={workload} deps={deps} />}
      {plots.length > 0 && (
        <div className="jp-WorkbenchDetail-plots" role="group" aria-label="Dashboard plots">
          {plots.map(plot => (
            <button
              key={plot.id}
              type="button"
              className="jp-Button jp-mod-styled jp-mod-reject"
              data-plot={plot.id}
              aria-label={`Open the ${plot.label.toLowerCase()} plot of ${workload.name}`}
              onClick={() =>
                void deps.commands.execute('workbench:dask-plot', {
                  name: workload.name,
                  plot: plot.id
                })
              }
            >
              {plot.label}
            </button>
          ))}
        </div>
      )}
    </section>
  );
}
