/**
 * The windowed list of workload rows: only the rows in view (and a few around) are in the
 * DOM, so 1,000 workloads scroll as smoothly as 10. The keyboard moves between rows
 * (arrows, Home, End, Page Up/Down), Enter opens one, Space selects it.
 */
import type { CommandRegistry } from '@lumino/commands';
import React, { useEffect, useLayoutEffect, useRef, useState } from 'react';

import { rowOffsets, scrollToShow, windowRange } from './listing';
import { type IRowActions, Row, rowHeight, ROW_HEIGHT } from './rows';
import type { IWorkload } from './types';
import type { UsageTracker } from './usage';

export interface IWorkloadListProps {
  workloads: IWorkload[];
  now: number;
  selected: Set<string>;
  commands: CommandRegistry;
  tracker: UsageTracker;
  actions: IRowActions;
  onSelect: (w: IWorkload, range: boolean) => void;
  onContextMenu: (w: IWorkload, x: number, y: number) => void;
}

/** Keys that move the keyboard's row, and where to. */
function target(key: string, index: number, count: number, page: number): number | null {
  switch (key) {
    case 'ArrowDown':
      return Math.min(count - 1, index + 1);
    case 'ArrowUp':
      return Math.max(0, index - 1);
    case 'Home':
      return 0;
    case 'End':
      return count - 1;
    case 'PageDown':
      return Math.min(count - 1, index + page);
    case 'PageUp':
      return Math.max(0, index - page);
    default:
      return null;
  }
}

export function WorkloadList(props: IWorkloadListProps): JSX.Element {
  const { workloads } = props;
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  const [activeName, setActiveName] = useState<string | null>(null);
  const focusPending = useRef(false);

  useLayoutEffect(() => {
    const node = scroller.current;
    if (!node) {
      return;
    }
    const measure = (): void => setHeight(node.clientHeight || 600);
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(node);
    return () => observer.disconnect();
  }, []);

  const offsets = rowOffsets(workloads.map(rowHeight));
  let active = activeName ? workloads.findIndex(w => w.name === activeName) : -1;
  if (active < 0) {
    active = 0;
  }
  const range = windowRange(offsets, scrollTop, height);
  // the row Tab reaches: the keyboard's row, or the first one drawn when that one is not
  const tabbable = active >= range.start && active < range.end ? active : range.start;

  useEffect(() => {
    if (!focusPending.current) {
      return;
    }
    focusPending.current = false;
    scroller.current?.querySelector<HTMLElement>(`li[data-index="${active}"]`)?.focus();
  });

  const moveTo = (index: number): void => {
    const w = workloads[index];
    if (!w) {
      return;
    }
    setActiveName(w.name);
    const node = scroller.current;
    if (node) {
      const top = scrollToShow(offsets, index, node.scrollTop, node.clientHeight);
      if (top !== null) {
        node.scrollTop = top;
        setScrollTop(top);
      }
    }
    focusPending.current = true;
  };

  const onKeyDown = (e: React.KeyboardEvent): void => {
    const row = (e.target as HTMLElement).closest('li[data-index]') as HTMLElement | null;
    if (!row) {
      return;
    }
    const onRow = e.target === row;
    const index = Number(row.dataset['index']);
    const w = workloads[index];
    const page = Math.max(1, Math.floor(height / ROW_HEIGHT) - 1);
    const next = target(e.key, index, workloads.length, page);
    if (next !== null && (onRow || e.key === 'ArrowDown' || e.key === 'ArrowUp')) {
      e.preventDefault();
      moveTo(next);
      return;
    }
    if (!onRow || !w) {
      return;
    }
    if (e.key === 'Enter') {
      e.preventDefault();
      props.actions.open(w);
    } else if (e.key === ' ') {
      e.preventDefault();
      props.onSelect(w, e.shiftKey);
    } else if (e.key === 'ContextMenu' || (e.key === 'F10' && e.shiftKey)) {
      e.preventDefault();
      const rect = row.getBoundingClientRect();
      props.onContextMenu(w, rect.left + 16, rect.top + ROW_HEIGHT);
    }
  };

  const rows: JSX.Element[] = [];
  for (let i = range.start; i < range.end; i++) {
    const w = workloads[i];
    rows.push(
      <Row
        key={w.name}
        workload={w}
        index={i}
        count={workloads.length}
        now={props.now}
        selected={props.selected.has(w.name)}
        active={i === tabbable}
        commands={props.commands}
        tracker={props.tracker}
        actions={props.actions}
        onSelect={props.onSelect}
        onFocusRow={index => setActiveName(workloads[index]?.name ?? null)}
        onContextMenu={props.onContextMenu}
      />
    );
  }
  return (
    <div
      className="jp-WorkbenchPanel-scroller"
      ref={scroller}
      onScroll={e => setScrollTop((e.target as HTMLDivElement).scrollTop)}
    >
      <div className="jp-WorkbenchPanel-sizer" style={{ height: range.total }}>
        <ul
          className="jp-WorkbenchPanel-list"
          aria-label="Workloads"
          style={{ transform: `translateY(${range.offset}px)` }}
          onKeyDown={onKeyDown}
        >
          {rows}
        </ul>
      </div>
    </div>
  );
}
