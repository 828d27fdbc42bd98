/**
 * A main-area tab showing a workload's log text as it streams, with a toolbar: follow/pause,
 * search (highlight, next/previous), wrap, download, jump to the first error, and the output
 * notebook of a notebook run.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import type { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import '../style/detail.css';
import type { WorkbenchAPI } from './api';
import { errorMessage } from './handler';
import { logsIcon } from './icons';
import {
  findMatches,
  firstErrorLine,
  type IMatch,
  lineOffset,
  logFileName,
  matchLabel,
  nextMatch
} from './logtext';

function button(label: string, text: string, onClick: () => void): HTMLButtonElement {
  const node = document.createElement('button');
  node.type = 'button';
  node.className = 'jp-Button jp-mod-styled jp-mod-reject';
  node.textContent = text;
  node.setAttribute('aria-label', label);
  node.addEventListener('click', onClick);
  return node;
}

/** The log text of one workload, followed until it ends or the tab closes. */
export class LogView extends Widget {
  constructor(
    private readonly _api: WorkbenchAPI,
    readonly workload: string,
    private readonly _options: LogView.IOptions = {}
  ) {
    super();
    this.addClass('jp-WorkbenchLogs');
    this.node.dataset.workload = workload;
    this._pre = document.createElement('pre');
    this._pre.className = 'jp-WorkbenchLogs-text';
    this._pre.tabIndex = 0;
    this._pre.setAttribute('aria-label', `Log text of ${workload}`);
    this._state = document.createElement('div');
    this._state.className = 'jp-WorkbenchLogs-state';
    this._state.setAttribute('role', 'status');
    this.node.append(this._toolbar(), this._pre, this._state);
    void this.follow();
  }

  /** The log text received so far. */
  get text(): string {
    return this._text;
  }

  /** Whether new text scrolls into view as it arrives. */
  get following(): boolean {
    return this._following;
  }

  /** Stream the logs (again, from the start). */
  async follow(): Promise<void> {
    this._abort?.abort();
    const abort = new AbortController();
    this._abort = abort;
    this._text = '';
    this._render();
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

  /** Follow (scroll to new text) or pause (keep the view where it is). */
  setFollowing(on: boolean): void {
    this._following = on;
    this._followButton.textContent = on ? 'Pause' : 'Follow';
    this._followButton.setAttribute('aria-pressed', String(!on));
    this._followButton.setAttribute(
      'aria-label',
      `${on ? 'Pause following' : 'Follow'} the log of ${this.workload}`
    );
    if (on) {
      this._render();
      this.node.scrollTop = this.node.scrollHeight;
    }
  }

  /** Highlight every match of `query` and go to the first. */
  search(query: string): void {
    this._query = query;
    this._matches = findMatches(this._text, query);
    this._current = this._matches.length ? 0 : -1;
    this._errorLine = null;
    this._render();
    this._reveal();
  }

  /** Go to the next (or previous) match. */
  step(direction: 1 | -1 = 1): void {
    this._current = nextMatch(this._matches.length, this._current, direction);
    this._render();
    this._reveal();
  }

  /** Scroll to the first line that reads like an error; false when there is none. */
  jumpToError(): boolean {
    const index = firstErrorLine(this._text);
    if (index < 0) {
      this._setState('no error in the log so far', this._state.dataset.state ?? 'running');
      return false;
    }
    const start = lineOffset(this._text, index);
    const newline = this._text.indexOf('\n', start);
    this._errorLine = { start, end: newline < 0 ? this._text.length : newline };
    this.setFollowing(false);
    this._render();
    this._pre.querySelector('.jp-WorkbenchLogs-errorLine')?.scrollIntoView({ block: 'center' });
    return true;
  }

  setWrap(on: boolean): void {
    this._pre.classList.toggle('jp-mod-wrap', on);
    this._wrapButton.setAttribute('aria-pressed', String(on));
  }

  /** Save the text received so far as NAME.log. */
  download(): void {
    const url = URL.createObjectURL(new Blob([this._text], { type: 'text/plain' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = logFileName(this.workload);
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  dispose(): void {
    this._abort?.abort();
    super.dispose();
  }

  private _toolbar(): HTMLElement {
    const bar = document.createElement('div');
    bar.className = 'jp-WorkbenchLogs-toolbar';
    bar.setAttribute('role', 'toolbar');
    bar.setAttribute('aria-label', `Log tools of ${this.workload}`);
    const name = this.workload;
    this._followButton = button(`Pause following the log of ${name}`, 'Pause', () =>
      this.setFollowing(!this._following)
    );
    this._followButton.dataset.action = 'follow';
    this._followButton.setAttribute('aria-pressed', 'false');
    const input = document.createElement('input');
    input.type = 'search';
    input.className = 'jp-mod-styled';
    input.placeholder = 'Search the log';
    input.setAttribute('aria-label', `Search the log of ${name}`);
    input.addEventListener('input', () => this.search(input.value));
    input.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        event.preventDefault();
        this.step(event.shiftKey ? -1 : 1);
      }
    });
    this._count = document.createElement('span');
    this._count.className = 'jp-WorkbenchLogs-count';
    this._count.setAttribute('aria-live', 'polite');
    const previous = button(`Previous match in the log of ${name}`, '↑', () => this.step(-1));
    const next = button(`Next match in the log of ${name}`, '↓', () => this.step(1));
    this._wrapButton = button(`Wrap the lines of the log of ${name}`, 'Wrap', () =>
      this.setWrap(!this._pre.classList.contains('jp-mod-wrap'))
    );
    this._wrapButton.setAttribute('aria-pressed', 'false');
    const error = button(`Jump to the first error in the log of ${name}`, 'First error', () =>
      this.jumpToError()
    );
    const save = button(`Download the log of ${name}`, 'Download', () => this.download());
    bar.append(
      this._followButton,
      input,
      previous,
      next,
      this._count,
      this._wrapButton,
      error,
      save
    );
    const { commands, outputCommand } = this._options;
    if (commands && outputCommand) {
      bar.append(
        button(`Open the output notebook of ${name}`, 'Output notebook', () => {
          void commands.execute(outputCommand, { name });
        })
      );
    }
    return bar;
  }

  private _append(text: string): void {
    if (!text) {
      return;
    }
    this._text += text;
    if (this._query) {
      this._matches = findMatches(this._text, this._query);
    }
    if (!this._following) {
      return;
    }
    if (this._query || this._errorLine) {
      this._scheduleRender();
    } else {
      this._pre.append(document.createTextNode(text));
    }
    this.node.scrollTop = this.node.scrollHeight;
  }

  private _scheduleRender(): void {
    if (this._pending) {
      return;
    }
    this._pending = true;
    requestAnimationFrame(() => {
      this._pending = false;
      this._render();
      if (this._following) {
        this.node.scrollTop = this.node.scrollHeight;
      }
    });
  }

  /** Redraw the text with the matches (and the error line) marked. */
  private _render(): void {
    const marks: (IMatch & { className: string })[] = this._matches.map((m, i) => ({
      ...m,
      className: i === this._current ? 'jp-mod-current' : ''
    }));
    if (this._errorLine) {
      marks.push({ ...this._errorLine, className: 'jp-WorkbenchLogs-errorLine' });
      marks.sort((a, b) => a.start - b.start);
    }
    const fragment = document.createDocumentFragment();
    let at = 0;
    for (const mark of marks) {
      if (mark.start < at) {
        continue;
      }
      if (mark.start > at) {
        fragment.append(document.createTextNode(this._text.slice(at, mark.start)));
      }
      const node = document.createElement('mark');
      node.className = mark.className;
      node.textContent = this._text.slice(mark.start, mark.end);
      fragment.append(node);
      at = mark.end;
    }
    fragment.append(document.createTextNode(this._text.slice(at)));
    this._pre.replaceChildren(fragment);
    if (this._count) {
      this._count.textContent = matchLabel(this._query, this._matches.length, this._current);
    }
  }

  private _reveal(): void {
    this._pre.querySelector('mark.jp-mod-current')?.scrollIntoView({ block: 'center' });
  }

  private _setState(text: string, state: string): void {
    this._state.textContent = text;
    this._state.dataset.state = state;
  }

  private _pre: HTMLPreElement;
  private _state: HTMLDivElement;
  private _count!: HTMLSpanElement;
  private _followButton!: HTMLButtonElement;
  private _wrapButton!: HTMLButtonElement;
  private _abort: AbortController | null = null;
  private _text = '';
  private _following = true;
  private _query = '';
  private _matches: IMatch[] = [];
  private _current = -1;
  private _errorLine: IMatch | null = null;
  private _pending = false;
}

export namespace LogView {
  export interface IOptions {
    /** With both: a toolbar button opening the run's executed notebook. */
    commands?: CommandRegistry;
    outputCommand?: string;
  }
}

/** A main-area widget for the logs of `name` (the caller adds it to the shell). */
export function createLogsWidget(
  api: WorkbenchAPI,
  name: string,
  options: LogView.IOptions = {}
): MainAreaWidget<LogView> {
  const content = new LogView(api, name, options);
  const widget = new MainAreaWidget({ content });
  // after the wrapper, which names every content "main area content"
  content.node.setAttribute('aria-label', `Logs of ${name}`);
  widget.id = `workbench-logs-${name}`;
  widget.title.label = `Logs: ${name}`;
  widget.title.icon = logsIcon;
  widget.title.closable = true;
  return widget;
}
