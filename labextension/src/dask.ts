/**
 * A Dask cluster's own dashboard plots (task stream, progress, workers' memory) in Lab tabs.
 *
 * The record's dashboard address (`dashboardLink`: through the Jupyter server's proxy for
 * local clusters) ends in the dashboard's `/status` page; the single plots are the bokeh
 * documents next to it (`/individual-task-stream`, …): `daskPlotLink` in format.ts.
 *
 * Each plot is a main-area widget: docked anywhere in Lab (split, tabbed) and brought back
 * after a reload by the layout restorer (index.ts), which reads `workload` and `plot` off it.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { IFrame } from '@jupyterlab/ui-components';

import type { IDaskPlot } from './format';

/** Which cluster and plot a plot widget shows, for the layout restorer. */
export function plotOf(widget: MainAreaWidget<IFrame>): { name: string; plot: string } {
  return { name: widget.node.dataset.workload ?? '', plot: widget.node.dataset.plot ?? '' };
}

/** A main-area tab framing one plot (the caller adds it to the shell). */
export function createDaskPlotWidget(
  name: string,
  plot: IDaskPlot,
  url: string
): MainAreaWidget<IFrame> {
  // Bokeh needs scripts, and its websocket goes through the same proxy with the page's
  // credentials: the frame shares this origin, as the dashboard tab opened today does.
  const content = new IFrame({ sandbox: ['allow-scripts', 'allow-same-origin'] });
  content.url = url;
  content.addClass('jp-WorkbenchDaskPlot');
  const widget = new MainAreaWidget({ content });
  widget.id = `workbench-dask-${name}-${plot.id}`;
  widget.title.label = `${plot.label}: ${name}`;
  widget.title.caption = `${plot.label} of the Dask cluster ${name}`;
  widget.title.closable = true;
  widget.node.dataset.workload = name;
  widget.node.dataset.plot = plot.id;
  content.node.querySelector('iframe')?.setAttribute('title', `${plot.label} of ${name}`);
  return widget;
}
