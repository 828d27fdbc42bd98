/**
 * Notifications of ended workloads: which ones (whose, how long they ran), what they say,
 * and where a notebook run's executed notebook is.
 */
import { endMessage, outcomeOf, outputNotebookAction, outputNotebookPath } from '../ending';
import { type ITransition, runSeconds, shouldNotify, WorkloadModel } from '../model';
import { DEFAULT_PREFERENCES, readPreferences } from '../settings';
import { event, workload } from './fixtures';

function ended(overrides: Partial<ITransition> = {}): ITransition {
  return {
    name: 'train-3',
    kind: 'train',
    from: 'running',
    to: 'succeeded',
    message: '',
    exitCode: 0,
    launchedHere: false,
    created: 1000,
    started: 1010,
    ended: 1135,
    ...overrides
  };
}

describe('which ended workloads are notified', () => {
  it('counts a run from its start, or its launch when it never started', () => {
    expect(runSeconds(ended())).toBe(125);
    expect(runSeconds(ended({ started: null }))).toBe(135);
    expect(runSeconds(ended({ ended: 900 }))).toBe(0);
  });

  it('notifies every workload seen, or the page launches, that ran long enough', () => {
    const long = ended();
    const short = ended({ ended: 1020 });
    expect(shouldNotify(long, 'all', 30)).toBe(true);
    expect(shouldNotify(short, 'all', 30)).toBe(false);
    expect(shouldNotify(short, 'all', 0)).toBe(true);
    expect(shouldNotify(long, 'mine', 30)).toBe(false);
    expect(shouldNotify({ ...long, launchedHere: true }, 'mine', 30)).toBe(true);
    expect(shouldNotify(long, 'off', 0)).toBe(false);
  });

  it('reads the settings: every workload after 30 s unless told otherwise', () => {
    expect([DEFAULT_PREFERENCES.notify, DEFAULT_PREFERENCES.notifyAfter]).toEqual(['all', 30]);
    expect(readPreferences({ notify: 'off', notifyAfter: 1 })).toMatchObject({
      notify: 'off',
      notifyAfter: 1
    });
    expect(readPreferences({ notifyAfter: -5 }).notifyAfter).toBe(30);
    expect(readPreferences({ notifyAfter: '5' }).notifyAfter).toBe(30);
  });

  it('a kernel or CLI launch ending under the page is a transition with its times', () => {
    const model = new WorkloadModel({ now: () => 1200 });
    const finished: ITransition[] = [];
    model.finished.connect((_, t) => finished.push(t));
    model.applyEvent(event('added', 'from-cli', 'running')); // first seen through an event
    model.upsert(workload('from-cli', { created: 1000, started: 1002 }));
    model.applyEvent(event('changed', 'from-cli', 'failed', { message: 'timed out after 60s' }));
    expect(finished).toHaveLength(1);
    expect(runSeconds(finished[0])).toBe(198);
    expect(shouldNotify(finished[0], 'all', 30)).toBe(true);
  });
});

describe('what the notification says', () => {
  it('names the workload, its outcome and its duration', () => {
    expect(endMessage(ended())).toBe('Training job train-3 succeeded after 2m 5s');
    expect(endMessage(ended({ to: 'failed', exitCode: 3, message: 'boom' }))).toBe(
      'Training job train-3 failed after 2m 5s (exit code 3): boom'
    );
    const late = ended({
      kind: 'pod',
      to: 'failed',
      exitCode: -9,
      message: 'timed out after 120s and was stopped'
    });
    expect(outcomeOf(late)).toBe('timed out');
    expect(endMessage(late)).toBe(
      'Pod train-3 timed out after 2m 5s: timed out after 120s and was stopped'
    );
    expect(endMessage(ended({ to: 'cancelled', kind: 'dask', started: null }))).toBe(
      'Dask cluster train-3 was cancelled after 2m 15s'
    );
  });
});

describe('the executed notebook of a notebook run', () => {
  const run = workload('nb-1', {
    kind: 'notebook',
    status: 'succeeded',
    run_dir: '/home/me/work/runs/nb-1'
  });

  it('is offered when it lies under the server root', () => {
    expect(outputNotebookPath(run, '/home/me/work')).toBe('runs/nb-1/output.ipynb');
    expect(outputNotebookPath(run, '/home/me/work/')).toBe('runs/nb-1/output.ipynb');
    const published = { ...run, info: { location: 'file:///home/me/work/out/nb-1' } };
    expect(outputNotebookPath(published, '/home/me/work')).toBe('out/nb-1/output.ipynb');
  });

  it('is not offered elsewhere, behind a URL, for schedules or other kinds', () => {
    expect(outputNotebookPath(run, '/srv/other')).toBeNull();
    expect(outputNotebookPath(run, '/home/me/wo')).toBeNull();
    expect(outputNotebookPath(run, '')).toBeNull();
    expect(outputNotebookPath({ ...run, info: { location: 's3://b/nb-1' } }, '/home')).toBeNull();
    expect(
      outputNotebookPath({ ...run, spec: { kind: 'notebook', schedule: '@daily' } }, '/home')
    ).toBeNull();
    expect(outputNotebookPath({ ...run, kind: 'pod' }, '/home/me/work')).toBeNull();
    // a cluster's run directory is not on this machine unless published to a path
    expect(outputNotebookPath({ ...run, backend: 'kubernetes' }, '/home/me/work')).toBeNull();
  });
});

describe('outputNotebookAction', () => {
  const run = (runDir: string, extra: object = {}) =>
    workload('nb-run', { kind: 'notebook', backend: 'local', run_dir: runDir, ...extra });

  it('opens the file under the root, else the read-only copy of a succeeded run', () => {
    expect(outputNotebookAction(run('/srv/lab/runs/nb-run'), 'succeeded', '/srv/lab')).toEqual({
      command: 'docmanager:open',
      args: { path: 'runs/nb-run/output.ipynb' }
    });
    expect(
      outputNotebookAction(run('/home/u/.workbench/runs/nb-run'), 'succeeded', '/srv/lab')
    ).toEqual({
      command: 'workbench:open-output',
      args: { name: 'nb-run' }
    });
  });

  it('offers nothing for a failed run outside the root, a schedule or another kind', () => {
    expect(outputNotebookAction(run('/elsewhere/nb-run'), 'failed', '/srv/lab')).toBeNull();
    const schedule = run('/elsewhere/nb-run', { spec: { schedule: '0 3 * * *' } });
    expect(outputNotebookAction(schedule, 'succeeded', '/srv/lab')).toBeNull();
    expect(
      outputNotebookAction(workload('p', { kind: 'pod' }), 'succeeded', '/srv/lab')
    ).toBeNull();
  });
});
