/**
 * Searching a log's text: matches to highlight, the next one to jump to, the first error.
 * Pure: no DOM (the tests use it directly).
 */

/** A line that starts an error: a Python traceback, an exception name, a failed test or step. */
export const ERROR_PATTERN = /Traceback|Error|FAILED/;

/** The index of the first line matching `ERROR_PATTERN`, or -1. */
export function firstErrorLine(text: string): number {
  const lines = text.split('\n');
  return lines.findIndex(line => ERROR_PATTERN.test(line));
}

/** The character offset where line `index` starts (-1 when there is no such line). */
export function lineOffset(text: string, index: number): number {
  if (index < 0) {
    return -1;
  }
  let offset = 0;
  for (let i = 0; i < index; i++) {
    const next = text.indexOf('\n', offset);
    if (next < 0) {
      return -1;
    }
    offset = next + 1;
  }
  return offset;
}

/** A match's [start, end) offsets in the text. */
export interface IMatch {
  start: number;
  end: number;
}

/** Every occurrence of `query` in `text`, case-insensitive, not overlapping; none for ''. */
export function findMatches(text: string, query: string, limit = 10000): IMatch[] {
  if (!query) {
    return [];
  }
  const haystack = text.toLowerCase();
  const needle = query.toLowerCase();
  const out: IMatch[] = [];
  let from = 0;
  while (out.length < limit) {
    const at = haystack.indexOf(needle, from);
    if (at < 0) {
      break;
    }
    out.push({ start: at, end: at + needle.length });
    from = at + needle.length;
  }
  return out;
}

/** The match to go to after `current` (-1: none yet), wrapping around; -1 when none. */
export function nextMatch(count: number, current: number, step: 1 | -1 = 1): number {
  if (count <= 0) {
    return -1;
  }
  if (current < 0) {
    return step === 1 ? 0 : count - 1;
  }
  return (((current + step) % count) + count) % count;
}

/** A piece of the text, plain or the `index`-th match. */
export interface ISegment {
  text: string;
  match: number | null;
}

/** The text cut at the matches, for rendering them highlighted. */
export function segments(text: string, matches: readonly IMatch[]): ISegment[] {
  const out: ISegment[] = [];
  let at = 0;
  matches.forEach((match, index) => {
    if (match.start > at) {
      out.push({ text: text.slice(at, match.start), match: null });
    }
    out.push({ text: text.slice(match.start, match.end), match: index });
    at = match.end;
  });
  if (at < text.length) {
    out.push({ text: text.slice(at), match: null });
  }
  return out;
}

/** "3 of 12", "no match", "" (no query). */
export function matchLabel(query: string, count: number, current: number): string {
  if (!query) {
    return '';
  }
  if (count === 0) {
    return 'no match';
  }
  return `${current < 0 ? 0 : current + 1} of ${count}`;
}

/** The file name a downloaded log gets. */
export function logFileName(workload: string): string {
  return `${workload.replace(/[^A-Za-z0-9._-]/g, '_')}.log`;
}
