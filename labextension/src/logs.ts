/**
 * A main-area tab showing a workload's log text as it streams.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import type { WorkbenchAPI } from './api';
import { errorMessage } from './handler';
import { logsIcon } from './icons';

/** The log text of one workload, followed until it ends or the tab closes. */
export class LogView extends Widget {
  constructor(
    private readonly _api: WorkbenchAPI,
    readonly workload: string
  ) {
    super();
    this.addClass('jp-WorkbenchLogs');
    this._pre = document.createElement('pre');
    this._pre.className = 'jp-WorkbenchLogs-text';
    this._state = document.createElement('div');
    this._state.className = 'jp-WorkbenchLogs-state';
    this.node.append(this._pre, this._state);
    void this.follow();
  }

  /** Stream the logs (again, from the start). */
  async follow(): Promise<void> {
    this._abort?.abort();
    const abort = new AbortController();
    this._abort = abort;
    this._pre.textContent = '';
    this._setState('following…', 'running');
    try {
      await this._api.streamLogs(this.workload, text => this._append(text), {
        follow: true,
        signal: abort.signal
      });
      this._setState('end of log', 'ended');
    } catch (error) {
      if (!abort.signal.aborted) {
        this._setState(`cannot read the log: ${errorMessage(error)}`, 'error');
      }
    }
  }

  dispose(): void {
    this._abort?.abort();
    super.dispose();
  }

  private _append(text: string): void {
    if (!text) {
      return;
    }
    const atEnd = this.node.scrollTop + this.node.clientHeight >= this.node.scrollHeight - 4;
    this._pre.append(document.createTextNode(text));
    if (atEnd) {
      this.node.scrollTop = this.node.scrollHeight;
    }
  }

  private _setState(text: string, state: string): void {
    this._state.textContent = text;
    this._state.dataset.state = state;
  }

  private _pre: HTMLPreElement;
  private _state: HTMLDivElement;
  private _abort: AbortController | null = null;
}

/** A main-area widget for the logs of `name` (the caller adds it to the shell). */
export function createLogsWidget(api: WorkbenchAPI, name: string): MainAreaWidget<LogView> {
  const content = new LogView(api, name);
  const widget = new MainAreaWidget({ content });
  widget.id = `workbench-logs-${name}`;
  widget.title.label = `Logs: ${name}`;
  widget.title.icon = logsIcon;
  widget.title.closable = true;
  return widget;
}
