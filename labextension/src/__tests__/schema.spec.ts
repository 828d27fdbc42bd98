/**
 * The form schema is derived from the schemas the server serves; the two JSON
 * files are `workbench schema pod|dask` output (regenerate them when spec.py changes).
 */
import {
  applyProfile,
  BASIC_FIELDS,
  cleanFormData,
  formSchema,
  inlineRefs,
  launchBody,
  simplifyField,
  uiSchema
} from '../schema';
import type { IJSONSchema } from '../types';
import daskSchema from './dask.schema.json';
import podSchema from './pod.schema.json';

type Obj = { [key: string]: any };

describe('simplifyField', () => {
  it('turns an optional field (anyOf with null) into its one type, help as description', () => {
    const field = simplifyField(
      {
        anyOf: [{ type: 'string' }, { type: 'null' }],
        default: null,
        title: 'Cpu',
        'x-flag': '--cpu',
        'x-help': 'CPU cores, e.g. 2 or 500m'
      },
      'cpu'
    );
    expect(field).toEqual({
      type: 'string',
      title: 'CPU',
      description: 'CPU cores, e.g. 2 or 500m'
    });
  });

  it('moves a default into the description instead of pre-filling it', () => {
    const field = simplifyField(
      { type: 'integer', default: 2, minimum: 1, 'x-help': 'number of workers' },
      'workers'
    );
    expect(field).toEqual({
      type: 'integer',
      minimum: 1,
      title: 'Workers',
      description: 'number of workers; default 2'
    });
  });

  it('lets durations be typed as text (30s, 2h)', () => {
    const field = simplifyField(
      { anyOf: [{ type: 'number' }, { type: 'null' }], title: 'Timeout' },
      'timeout'
    );
    expect(field['type']).toBe('string');
  });
});

describe('inlineRefs', () => {
  it('replaces $defs references with copies', () => {
    const out = inlineRefs(
      { a: { $ref: '#/$defs/X', title: 'A' } },
      { X: { type: 'object', title: 'X' } }
    ) as Obj;
    expect(out).toEqual({ a: { type: 'object', title: 'A' } });
  });

  it('names a missing definition', () => {
    expect(() => inlineRefs({ $ref: '#/$defs/Nope' }, {})).toThrow('#/$defs/Nope');
  });
});

describe('formSchema from the served pod schema', () => {
  const schema = formSchema(podSchema as IJSONSchema, 'pod', {
    profiles: { 'a100-small': { description: 'one A100, 32Gi', resources: { gpus: 1 } }, cpu: {} },
    backends: {
      default: 'local',
      backends: { local: { available: true }, kubernetes: { available: false, error: 'no config' } }
    }
  }) as Obj;

  it('shows the basic fields in order, never kind/send/get', () => {
    expect(Object.keys(schema.properties)).toEqual(BASIC_FIELDS.pod);
    expect(JSON.stringify(schema)).not.toContain('$ref');
    expect(JSON.stringify(schema)).not.toContain('x-flag');
  });

  it('inlines resources as a plain object of plain fields', () => {
    const resources = schema.properties.resources;
    expect(resources.type).toBe('object');
    expect(resources.title).toBe('Resources');
    expect(resources.properties.cpu).toMatchObject({
      type: 'string',
      description: 'CPU cores, e.g. 2 or 500m'
    });
    expect(resources.properties.gpus).toMatchObject({ type: 'integer', title: 'GPUs' });
    expect(resources.properties.gpus.default).toBeUndefined();
  });

  it('offers the profiles as a labelled dropdown', () => {
    expect(schema.properties.profile.oneOf).toEqual([
      { const: 'a100-small', title: 'a100-small — one A100, 32Gi' },
      { const: 'cpu', title: 'cpu' }
    ]);
  });

  it('labels the backends with default and availability', () => {
    expect(schema.properties.backend.oneOf).toEqual([
      { const: 'local', title: 'local (default)' },
      { const: 'kubernetes', title: 'kubernetes (unavailable)' }
    ]);
    expect(schema.properties.backend.enum).toBeUndefined();
  });

  it('drops the profile field when the config has none', () => {
    const bare = formSchema(podSchema as IJSONSchema, 'pod') as Obj;
    expect(bare.properties.profile).toBeUndefined();
    expect(bare.properties.backend.enum).toEqual(['local', 'kubernetes']);
  });

  it('shows every field but the kernel-only ones when advanced', () => {
    const all = formSchema(podSchema as IJSONSchema, 'pod', { advanced: true }) as Obj;
    const keys = Object.keys(all.properties);
    expect(keys.slice(0, 3)).toEqual(['name', 'backend', 'code']);
    expect(keys).toEqual(expect.arrayContaining(['env', 'volumes', 'secrets', 'labels', 'queue']));
    expect(keys).not.toEqual(expect.arrayContaining(['send']));
    expect(keys).not.toContain('kind');
    expect(all.properties.volumes.items.properties.type.enum).toContain('pvc');
  });

  it('makes the pod code a textarea and hides the submit button', () => {
    const ui = uiSchema('pod') as Obj;
    expect(ui.code['ui:widget']).toBe('textarea');
    expect(ui['ui:submitButtonOptions']).toEqual({ norender: true });
    expect((uiSchema('dask') as Obj).code).toBeUndefined();
  });

  it('says which backend an empty choice means', () => {
    const backends = { default: 'kubernetes', backends: {} };
    expect((uiSchema('pod', backends) as Obj).backend['ui:placeholder']).toBe(
      'server default (kubernetes)'
    );
    expect((uiSchema('pod') as Obj).backend['ui:placeholder']).toBe('server default');
  });
});

describe('formSchema from the served dask schema', () => {
  it('names the adapt range after its field, not its model', () => {
    const all = formSchema(daskSchema as IJSONSchema, 'dask', { advanced: true }) as Obj;
    expect(all.properties.adapt.title).toBe('Adapt');
    expect(all.properties.adapt.properties.minimum.type).toBe('integer');
    expect(all.properties.workers.description).toBe('number of workers; default 2');
    expect(all.properties.idle_timeout.type).toBe('string');
  });
});

describe('launch body', () => {
  it('drops what was left empty at any depth and sets the kind', () => {
    const body = launchBody('pod', {
      name: '',
      code: 'print(1)\n',
      resources: { cpu: '1', memory: null, gpus: undefined },
      env: {},
      args: [],
      volumes: [{}],
      kind: 'dask'
    });
    expect(body).toEqual({ code: 'print(1)', resources: { cpu: '1' }, kind: 'pod' });
  });

  it('keeps an explicit zero and false', () => {
    expect(cleanFormData({ resources: { gpus: 0 }, keep: false })).toEqual({
      resources: { gpus: 0 },
      keep: false
    });
  });
});

describe('applyProfile', () => {
  const profile = { resources: { gpus: 1, memory: '32Gi' }, image: 'img:1' };

  it('fills empty resources and image from the profile', () => {
    expect(applyProfile({ profile: 'p' }, profile)).toEqual({
      profile: 'p',
      resources: { gpus: 1, memory: '32Gi' },
      image: 'img:1'
    });
  });

  it('keeps what the user already filled in', () => {
    expect(applyProfile({ resources: { memory: '8Gi' }, image: 'mine' }, profile)).toEqual({
      resources: { gpus: 1, memory: '8Gi' },
      image: 'mine'
    });
    expect(applyProfile({ a: 1 }, undefined)).toEqual({ a: 1 });
  });
});
