/**
 * Model endpoints (`serve` workloads): what their rows show from the record's info, and their
 * launch form from the served schema (`serve.schema.json` is the server's `GET schemas/serve`;
 * regenerate it when spec_serve.py changes).
 */
import {
  endpointView,
  formatRate,
  formatReplicas,
  formatRevision,
  kindLabel,
  launchLabel,
  launchTitle,
  resourceSummary,
  rolloutLabel,
  safeURL
} from '../format';
import { BASIC_FIELDS, formSchema, launchBody, SERVE_PLACEHOLDER, uiSchema } from '../schema';
import { DEFAULT_PREFERENCES, readPreferences } from '../settings';
import { type IJSONSchema, KINDS } from '../types';
import { workload } from './fixtures';
import serveSchema from './serve.schema.json';

type Obj = { [key: string]: any };

/** The info the local router writes (see serve-contract: url, revision, canary, traffic, …). */
const INFO = {
  url: 'http://127.0.0.1:41234',
  model_name: 'iris',
  revision: 2,
  canary: null,
  traffic: { '2': 100 },
  ready: 2,
  desired: 2,
  rps: 12.34,
  generation: 2,
  rollout: { phase: 'complete', message: 'serving revision 2 100%' },
  revisions: [{ revision: 2, ready: 2, desired: 2, traffic: 100, state: 'serving', message: '' }]
};

function endpoint(info: Obj | null = INFO): ReturnType<typeof workload> {
  return workload('iris', { kind: 'serve', spec: { kind: 'serve', replicas: 2 }, info });
}

describe('a serve row', () => {
  it('shows the URL, revision, ready/desired replicas and request rate', () => {
    const view = endpointView(endpoint())!;
    expect(view.url).toBe('http://127.0.0.1:41234');
    expect(formatRevision(view)).toBe('revision 2');
    expect(formatReplicas(view)).toBe('2/2 ready');
    expect(formatRate(view.rps)).toBe('12 req/s');
    expect(rolloutLabel(view)).toBe('');
  });

  it('names a running canary and its share of the traffic', () => {
    const info = { ...INFO, canary: 3, traffic: { '2': 80, '3': 20 }, ready: 3, desired: 4 };
    const view = endpointView(endpoint(info))!;
    expect(formatRevision(view)).toBe('revision 2 · canary 3 at 20%');
    expect(formatReplicas(view)).toBe('3/4 ready');
    // scaling sets the replicas of a revision: the serving one's count, not the sum
    expect(view.replicas).toBe(2);
    expect(endpointView(endpoint({ ...info, revisions: [] }))!.replicas).toBe(4);
  });

  it('says when a rollout progresses or failed, with its message', () => {
    const failed = { ...INFO, rollout: { phase: 'failed', message: 'RuntimeError: no weights' } };
    const view = endpointView(endpoint(failed))!;
    expect(rolloutLabel(view)).toBe('rollout failed');
    expect(view.message).toBe('RuntimeError: no weights');
    const going = endpointView(endpoint({ ...INFO, rollout: { phase: 'progressing' } }))!;
    expect(rolloutLabel(going)).toBe('rolling out');
  });

  it('shows nothing it was not told before the router answers', () => {
    const view = endpointView(endpoint(null))!;
    expect(view).toMatchObject({ url: null, revision: null, canary: null, ready: null, rps: null });
    expect([formatRevision(view), formatReplicas(view), formatRate(view.rps)]).toEqual([
      '',
      '',
      ''
    ]);
  });

  it('ignores odd values instead of showing them', () => {
    const odd = { url: 'javascript:alert(1)', revision: 'two', ready: -1, rps: 'fast', traffic: 7 };
    const view = endpointView(endpoint({ ...odd, canary: 3 }))!;
    expect(view).toMatchObject({ url: null, revision: null, ready: null, rps: null });
    expect(view.canaryPercent).toBeNull();
    expect(safeURL('https://models.example/v2')).toBe('https://models.example/v2');
    expect(safeURL('http://a b')).toBeNull();
  });

  it('is only for serve workloads', () => {
    expect(endpointView(workload('p', { info: INFO }))).toBeNull();
  });

  it('rounds request rates to what a glance needs', () => {
    expect([0, 0.04, 2.46, 9.96, 37.4, 1234].map(formatRate)).toEqual([
      '0 req/s',
      '0 req/s',
      '2.5 req/s',
      '10 req/s',
      '37 req/s',
      '1.2k req/s'
    ]);
    expect(formatRate(null)).toBe('');
  });

  it('keeps the per-replica resources in the resource column', () => {
    expect(resourceSummary({ kind: 'serve', replicas: 2, resources: { cpu: '1' } })).toBe('1 CPU');
  });
});

describe('the serve kind in the panel and the launch menu', () => {
  it('is a kind the panel shows and launches', () => {
    expect(KINDS).toContain('serve');
    expect(DEFAULT_PREFERENCES.kinds).toContain('serve');
    expect(readPreferences({ kinds: ['serve', 'pod'] }).kinds).toEqual(['pod', 'serve']);
    expect(kindLabel('serve', true)).toBe('Model endpoints');
    expect(launchLabel('serve')).toBe('Serve a model…');
    expect(launchLabel('pod')).toBe('Pod');
    expect(launchTitle('serve')).toBe('Serve a model');
    expect(launchTitle('dask')).toBe('Launch Dask cluster');
  });
});

describe('formSchema from the served serve schema', () => {
  const schema = formSchema(serveSchema as IJSONSchema, 'serve') as Obj;

  it('shows the model fields first, never kind/send/get', () => {
    expect(Object.keys(schema.properties)).toEqual(BASIC_FIELDS.serve.filter(k => k !== 'profile'));
    expect(schema.properties.code.type).toBe('string');
    expect(schema.properties.model_uri.description).toContain('weights');
    expect(schema.properties.replicas).toMatchObject({ type: 'integer', minimum: 1, maximum: 100 });
    expect(schema.properties.autoscale.title).toBe('Autoscale');
    expect(schema.properties.autoscale.properties.minimum.type).toBe('integer');
  });

  it('lets the optional autoscale range stay empty (no required inner fields)', () => {
    const defs = (serveSchema as Obj)['$defs'];
    expect(defs.AdaptRange.required).toEqual(['minimum', 'maximum']);
    expect(schema.properties.autoscale.required).toBeUndefined();
  });

  it('takes the body size as text (16Mi) when all fields are shown', () => {
    const all = formSchema(serveSchema as IJSONSchema, 'serve', { advanced: true }) as Obj;
    expect(all.properties.max_body.type).toBe('string');
    expect(Object.keys(all.properties)).toEqual(
      expect.arrayContaining(['target_concurrency', 'operator', 'model_name', 'port'])
    );
    expect(Object.keys(all.properties)).not.toEqual(expect.arrayContaining(['send']));
    expect(Object.keys(all.properties)).not.toContain('get');
  });

  it('makes the model code a textarea with an example', () => {
    const ui = uiSchema('serve') as Obj;
    expect(ui.code['ui:widget']).toBe('textarea');
    expect(ui.code['ui:placeholder']).toBe(SERVE_PLACEHOLDER);
    expect(SERVE_PLACEHOLDER).toContain('def predict(inputs)');
  });

  it('sends the kind with what was filled in', () => {
    const body = launchBody('serve', {
      code: 'def predict(inputs):\n    return inputs\n',
      replicas: 2,
      autoscale: {}
    });
    expect(body).toEqual({
      code: 'def predict(inputs):\n    return inputs',
      replicas: 2,
      kind: 'serve'
    });
  });
});
