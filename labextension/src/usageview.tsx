/**
 * Resource usage views: the sidebar's usage line (figures and SVG sparklines) and the usage
 * tab (CPU, memory and GPU plotted over time, with peaks and averages).
 */
import { MainAreaWidget, ReactWidget } from '@jupyterlab/apputils';
import React, { useEffect, useReducer } from 'react';

import { usageIcon } from './icons';
import type { WorkloadModel } from './model';
import type { IUsageSample, IUsageSummary, IWorkload } from './types';
import {
  formatBytes,
  formatCores,
  formatPercent,
  niceCeiling,
  SPARK_SAMPLES,
  sparkPath,
  type UsageTracker
} from './usage';

const SPARK_WIDTH = 36;
const SPARK_HEIGHT = 14;

/** A small line of the last values; `top` fixes the scale (100 for one core). */
export function Sparkline(props: {
  values: number[];
  top?: number;
  label: string;
  className?: string;
}): JSX.Element {
  const d = sparkPath(props.values, SPARK_WIDTH, SPARK_HEIGHT, props.top);
  return (
    <svg
      className={`jp-WorkbenchSparkline ${props.className ?? ''}`}
      width={SPARK_WIDTH}
      height={SPARK_HEIGHT}
      viewBox={`0 -1 ${SPARK_WIDTH} ${SPARK_HEIGHT + 2}`}
      role="img"
      aria-label={props.label}
    >
      {d && <path d={d} fill="none" vectorEffect="non-scaling-stroke" />}
    </svg>
  );
}

/** The usage line of a running row: CPU in cores and memory, each with its sparkline. */
export function RowUsage(props: {
  workload: IWorkload;
  tracker: UsageTracker;
  onOpen: () => void;
  /** -1 keeps it out of the tab order (the list's keyboard row holds the focusable controls). */
  tabIndex?: number;
}): JSX.Element | null {
  const { workload, tracker } = props;
  const state = tracker.get(workload.name);
  const summary = tracker.summary(workload);
  if (!summary) {
    if (!state?.note) {
      return null;
    }
    return (
      <div
        className="jp-WorkbenchPanel-line jp-WorkbenchPanel-usage jp-mod-none"
        title={state.note}
      >
        no usage figures
      </div>
    );
  }
  const recent = (state?.history ?? []).slice(-SPARK_SAMPLES);
  const gpu = summary.gpu_util !== null && summary.gpu_util !== undefined;
  return (
    <div
      className="jp-WorkbenchPanel-line jp-WorkbenchPanel-usage"
      role="button"
      tabIndex={props.tabIndex ?? 0}
      title="Resource usage: click for plots over time"
      onClick={props.onOpen}
      onKeyDown={e => (e.key === 'Enter' || e.key === ' ') && props.onOpen()}
    >
      <span className="jp-WorkbenchPanel-cpu" title="CPU in cores (1 = one core busy), last sample">
        CPU {formatCores(summary.cpu_percent)}
        <Sparkline
          values={recent.map(s => s.cpu_percent)}
          top={100}
          label={`CPU of ${workload.name}`}
        />
      </span>
      <span className="jp-WorkbenchPanel-memory" title="resident memory, last sample">
        Mem {formatBytes(summary.rss_bytes)}
        <Sparkline values={recent.map(s => s.rss_bytes)} label={`memory of ${workload.name}`} />
      </span>
      {gpu && (
        <span className="jp-WorkbenchPanel-gpu" title="GPU utilisation, last sample">
          GPU {formatPercent(summary.gpu_util)}
        </span>
      )}
    </div>
  );
}

interface ISeries {
  title: string;
  unit: (value: number) => string;
  values: (sample: IUsageSample) => number | null;
  /** The least top of the y axis (one core for CPU). */
  floor?: number;
}

const PLOT = { width: 560, height: 160, left: 56, bottom: 20, top: 8, right: 8 };

/** Ages along the x axis: "-5m", "now". */
function ago(seconds: number): string {
  if (seconds < 1) {
    return 'now';
  }
  if (seconds < 120) {
    return `-${Math.round(seconds)}s`;
  }
  return seconds < 7200 ? `-${Math.round(seconds / 60)}m` : `-${(seconds / 3600).toFixed(1)}h`;
}

/** One quantity over time: a line over the samples, with its y and time axes. */
export function UsagePlot(props: {
  series: ISeries;
  history: IUsageSample[];
  now: number;
}): JSX.Element {
  const { series, history } = props;
  const points = history
    .map(s => [s.t, series.values(s)] as const)
    .filter((p): p is readonly [number, number] => p[1] !== null && Number.isFinite(p[1]));
  const w = PLOT.width - PLOT.left - PLOT.right;
  const h = PLOT.height - PLOT.top - PLOT.bottom;
  const top = niceCeiling(Math.max(series.floor ?? 0, ...points.map(p => p[1])));
  const end = Math.max(props.now, points.length ? points[points.length - 1][0] : props.now);
  const start = Math.min(points.length ? points[0][0] : end - 60, end - 60);
  const x = (t: number): number => PLOT.left + ((t - start) / (end - start)) * w;
  const y = (v: number): number => PLOT.top + h - (v / top) * h;
  const d = points
    .map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`)
    .join('');
  return (
    <figure className="jp-WorkbenchUsage-plot" data-series={series.title}>
      <figcaption>{series.title}</figcaption>
      <svg
        width={PLOT.width}
        height={PLOT.height}
        viewBox={`0 0 ${PLOT.width} ${PLOT.height}`}
        role="img"
        aria-label={`${series.title} over time`}
      >
        {[0, 0.5, 1].map(f => (
          <g key={f} className="jp-WorkbenchUsage-grid">
            <line x1={PLOT.left} x2={PLOT.left + w} y1={y(top * f)} y2={y(top * f)} />
            <text x={PLOT.left - 4} y={y(top * f) + 4} textAnchor="end">
              {series.unit(top * f)}
            </text>
          </g>
        ))}
        <text x={PLOT.left} y={PLOT.height - 4} textAnchor="start">
          {ago(end - start)}
        </text>
        <text x={PLOT.left + w} y={PLOT.height - 4} textAnchor="end">
          {ago(props.now - end)}
        </text>
        {d && <path className="jp-WorkbenchUsage-line" d={d} fill="none" />}
        {points.length > 0 && (
          <circle
            className="jp-WorkbenchUsage-last"
            cx={x(points[points.length - 1][0])}
            cy={y(points[points.length - 1][1])}
            r={2.5}
          >
            <title>{series.unit(points[points.length - 1][1])}</title>
          </circle>
        )}
        {points.length === 0 && (
          <text x={PLOT.left + w / 2} y={PLOT.top + h / 2} textAnchor="middle">
            no samples yet
          </text>
        )}
      </svg>
    </figure>
  );
}

const CPU: ISeries = {
  title: 'CPU (cores)',
  unit: v => formatCores(v),
  values: s => s.cpu_percent,
  floor: 100
};
const MEMORY: ISeries = { title: 'Memory', unit: formatBytes, values: s => s.rss_bytes };
const GPU: ISeries = {
  title: 'GPU utilisation',
  unit: v => formatPercent(v),
  values: s => s.gpu_util,
  floor: 100
};
const GPU_MEMORY: ISeries = {
  title: 'GPU memory',
  unit: formatBytes,
  values: s => s.gpu_memory_bytes
};

function SummaryTable(props: { summary: IUsageSummary }): JSX.Element {
  const s = props.summary;
  const rows: [string, string, string, string][] = [
    [
      'CPU (cores)',
      formatCores(s.cpu_percent),
      formatCores(s.peak_cpu_percent),
      formatCores(s.avg_cpu_percent)
    ],
    [
      'Memory',
      formatBytes(s.rss_bytes),
      formatBytes(s.peak_rss_bytes),
      formatBytes(s.avg_rss_bytes)
    ]
  ];
  if (s.gpu_util !== null || s.peak_gpu_util) {
    rows.push(['GPU', formatPercent(s.gpu_util), formatPercent(s.peak_gpu_util), '']);
  }
  if (s.gpu_memory_bytes !== null || s.peak_gpu_memory_bytes) {
    rows.push([
      'GPU memory',
      formatBytes(s.gpu_memory_bytes),
      formatBytes(s.peak_gpu_memory_bytes),
      ''
    ]);
  }
  return (
    <table className="jp-WorkbenchUsage-summary">
      <thead>
        <tr>
          <th />
          <th>last</th>
          <th>peak</th>
          <th>average</th>
        </tr>
      </thead>
      <tbody>
        {rows.map(([what, ...cells]) => (
          <tr key={what}>
            <th>{what}</th>
            {cells.map((cell, i) => (
              <td key={i}>{cell}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function UsageBody(props: {
  name: string;
  tracker: UsageTracker;
  model: WorkloadModel;
}): JSX.Element {
  const { name, tracker, model } = props;
  const [, bump] = useReducer((n: number) => n + 1, 0);
  useEffect(() => {
    const onUsage = (_: unknown, changed: string): void => {
      if (changed === name) {
        bump();
      }
    };
    tracker.changed.connect(onUsage);
    model.changed.connect(bump);
    return () => {
      tracker.changed.disconnect(onUsage);
      model.changed.disconnect(bump);
    };
  }, [name, tracker, model]);
  const workload = model.get(name);
  const state = tracker.get(name);
  const summary = state?.summary ?? workload?.usage ?? null;
  const history = state?.history ?? [];
  const now = workload?.ended ?? Date.now() / 1000;
  const gpu = history.some(s => s.gpu_util !== null) || !!summary?.peak_gpu_util;
  const gpuMemory = history.some(s => s.gpu_memory_bytes !== null);
  return (
    <div className="jp-WorkbenchUsage-body" data-workload={name}>
      <h2>
        {name} <span className="jp-WorkbenchUsage-status">{workload?.status ?? ''}</span>
      </h2>
      {summary ? (
        <>
          <SummaryTable summary={summary} />
          <p className="jp-WorkbenchUsage-meta">
            {summary.samples} samples · {summary.threads} threads · {summary.cpu_seconds.toFixed(1)}{' '}
            CPU seconds{state?.source ? ` · from ${state.source}` : ''}
          </p>
        </>
      ) : (
        <p className="jp-WorkbenchUsage-note">{state?.note ?? 'loading…'}</p>
      )}
      <UsagePlot series={CPU} history={history} now={now} />
      <UsagePlot series={MEMORY} history={history} now={now} />
      {gpu && <UsagePlot series={GPU} history={history} now={now} />}
      {gpuMemory && <UsagePlot series={GPU_MEMORY} history={history} now={now} />}
    </div>
  );
}

/** The usage tab's content: follows the workload while the tab is open. */
export class UsageView extends ReactWidget {
  constructor(
    readonly workload: string,
    private readonly _tracker: UsageTracker,
    private readonly _model: WorkloadModel
  ) {
    super();
    this.addClass('jp-WorkbenchUsage');
    this._unwatch = _tracker.watch(workload);
  }

  dispose(): void {
    this._unwatch();
    super.dispose();
  }

  protected render(): JSX.Element {
    return <UsageBody name={this.workload} tracker={this._tracker} model={this._model} />;
  }

  private _unwatch: () => void;
}

/** A main-area tab with the usage of `name` (the caller adds it to the shell). */
export function createUsageWidget(
  name: string,
  tracker: UsageTracker,
  model: WorkloadModel
): MainAreaWidget<UsageView> {
  const widget = new MainAreaWidget({ content: new UsageView(name, tracker, model) });
  widget.id = `workbench-usage-${name}`;
  widget.title.label = `Usage: ${name}`;
  widget.title.icon = usageIcon;
  widget.title.closable = true;
  return widget;
}
