/**
 * Parts of the detail view: timings, status history and a schedule's runs.
 */
import React from 'react';

import type { IScheduledRun } from './api';
import { formatTime, type IHistoryEntry, isPaused, progressLabel, timings } from './detailstate';
import type { IWorkload } from './types';
import { formatDuration } from './usage';

export function Field(props: { label: string; children: React.ReactNode; className?: string }) {
  return (
    <>
      <dt>{props.label}</dt>
      <dd className={props.className}>{props.children}</dd>
    </>
  );
}

export function Timings(props: { workload: IWorkload; now: number }) {
  const t = timings(props.workload, props.now);
  const progress = progressLabel(props.workload);
  return (
    <section className="jp-WorkbenchDetail-section" aria-label="Timings">
      <h3>Timings</h3>
      <dl className="jp-WorkbenchDetail-fields">
        <Field label="Launched">{formatTime(t.created)}</Field>
        <Field label="Started">{formatTime(t.started)}</Field>
        <Field label="Ended">{formatTime(t.ended)}</Field>
        <Field label="Queued">
          {t.queuedSeconds === null ? '–' : formatDuration(t.queuedSeconds)}
        </Field>
        <Field
          label={t.ended === null ? 'Running for' : 'Duration'}
          className="jp-WorkbenchDetail-duration"
        >
          {formatDuration(t.durationSeconds)}
        </Field>
        {progress && <Field label="Progress">{progress}</Field>}
      </dl>
    </section>
  );
}

export function History(props: { entries: IHistoryEntry[] }) {
  return (
    <section className="jp-WorkbenchDetail-section" aria-label="Status history">
      <h3>Status history</h3>
      <table className="jp-WorkbenchDetail-history">
        <thead>
          <tr>
            <th scope="col">Status</th>
            <th scope="col">Since</th>
            <th scope="col">Reason</th>
          </tr>
        </thead>
        <tbody>
          {props.entries.map(entry => (
            <tr key={entry.status} data-status={entry.status}>
              <td>{entry.status}</td>
              <td>{formatTime(entry.t)}</td>
              <td>{entry.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function Schedule(props: {
  workload: IWorkload;
  runs: IScheduledRun[] | null;
  error: string;
}) {
  const w = props.workload;
  return (
    <section className="jp-WorkbenchDetail-section" aria-label="Schedule">
      <h3>Schedule</h3>
      <p>
        <code>{String(w.spec.schedule)}</code> — {isPaused(w) ? 'paused' : 'active'}
      </p>
      {props.error && <p className="jp-WorkbenchDetail-error">{props.error}</p>}
      {props.runs && props.runs.length === 0 && <p>No runs yet.</p>}
      {props.runs && props.runs.length > 0 && (
        <table className="jp-WorkbenchDetail-runs">
          <thead>
            <tr>
              <th scope="col">Run</th>
              <th scope="col">Status</th>
              <th scope="col">Started</th>
              <th scope="col">Ended</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody>
            {props.runs.map(run => (
              <tr key={run.name}>
                <td>{run.name}</td>
                <td>{run.status}</td>
                <td>{formatTime(run.started)}</td>
                <td>{formatTime(run.ended)}</td>
                <td>{run.message ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
