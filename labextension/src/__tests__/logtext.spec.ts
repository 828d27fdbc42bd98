import {
  findMatches,
  firstErrorLine,
  lineOffset,
  logFileName,
  matchLabel,
  nextMatch,
  segments
} from '../logtext';

const LOG = 'starting\nstep 1 ok\nTraceback (most recent call last):\nValueError: boom\n';

describe('firstErrorLine', () => {
  it('finds the first Traceback, Error or FAILED line', () => {
    expect(firstErrorLine(LOG)).toBe(2);
    expect(firstErrorLine('a\ntest_x FAILED\nTraceback')).toBe(1);
    expect(firstErrorLine('all good\n')).toBe(-1);
    expect(lineOffset(LOG, 2)).toBe(LOG.indexOf('Traceback'));
    expect(lineOffset(LOG, 99)).toBe(-1);
  });
});

describe('search', () => {
  it('finds every match, case-insensitively, and none for an empty query', () => {
    expect(findMatches(LOG, 'OK')).toEqual([{ start: 16, end: 18 }]);
    expect(findMatches('aaaa', 'aa')).toHaveLength(2);
    expect(findMatches(LOG, '')).toEqual([]);
  });

  it('steps forward and back, wrapping around', () => {
    expect(nextMatch(3, -1)).toBe(0);
    expect(nextMatch(3, -1, -1)).toBe(2);
    expect(nextMatch(3, 2)).toBe(0);
    expect(nextMatch(3, 0, -1)).toBe(2);
    expect(nextMatch(0, 0)).toBe(-1);
  });

  it('cuts the text at the matches for highlighting', () => {
    const text = 'one two one';
    expect(segments(text, findMatches(text, 'one'))).toEqual([
      { text: 'one', match: 0 },
      { text: ' two ', match: null },
      { text: 'one', match: 1 }
    ]);
    expect(matchLabel('one', 2, 1)).toBe('2 of 2');
    expect(matchLabel('x', 0, -1)).toBe('no match');
    expect(matchLabel('', 0, -1)).toBe('');
  });

  it('names the downloaded file after the workload', () => {
    expect(logFileName('train-3')).toBe('train-3.log');
    expect(logFileName('a/b c')).toBe('a_b_c.log');
  });
});
