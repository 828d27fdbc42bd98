/**
 * Turn the served pydantic JSON Schema of a spec into a schema a form renders well,
 * and form data back into the body `POST workloads` expects.
 *
 * Pure functions: the launch dialog calls them, the tests check them.
 */
import type { IBackends, IJSONSchema, IProfile, Kind } from './types';

type Schema = { [key: string]: unknown };

/** The fields shown before "all fields" is ticked, in this order. */
export const BASIC_FIELDS: { [K in Kind]: string[] } = {
  pod: ['name', 'profile', 'backend', 'code', 'script', 'resources', 'image', 'timeout'],
  dask: ['name', 'profile', 'backend', 'workers', 'threads', 'resources', 'image', 'idle_timeout'],
  train: [
    'name',
    'profile',
    'backend',
    'code',
    'script',
    'nodes',
    'procs_per_node',
    'resources',
    'image',
    'timeout'
  ],
  notebook: [
    'notebook',
    'name',
    'profile',
    'backend',
    'parameters',
    'kernel',
    'resources',
    'timeout'
  ],
  serve: [
    'name',
    'profile',
    'backend',
    'code',
    'script',
    'model_uri',
    'replicas',
    'autoscale',
    'resources',
    'image'
  ]
};

/** Fields a kernel fills in (`--send`, `--get`) or the dialog sets itself. */
const NEVER_SHOWN = new Set(['kind', 'send', 'get']);

/** Labels in the form's words where pydantic's default title ("Cpu", "Gpus") reads badly. */
export const FIELD_TITLES: { [key: string]: string } = {
  cpu: 'CPU',
  gpus: 'GPUs',
  gpu_type: 'GPU type',
  shm: 'Shared memory (/dev/shm)',
  procs_per_node: 'Processes per node',
  idle_timeout: 'Idle timeout',
  model_uri: 'Model URI',
  model_name: 'Model name',
  priority_class: 'Priority class',
  node_selector: 'Node selector'
};

/** Durations and sizes the server parses from text ("30s", "16Mi"); the schema says number. */
const TEXT_NUMBERS = new Set(['timeout', 'idle_timeout', 'max_body']);

export interface IFormSchemaOptions {
  /** Show every field, not only BASIC_FIELDS. */
  advanced?: boolean;
  profiles?: { [name: string]: IProfile };
  backends?: IBackends | null;
}

function isObject(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function titleCase(key: string): string {
  return key
    .split('_')
    .map(w => (w ? w[0].toUpperCase() + w.slice(1) : w))
    .join(' ');
}

/** Replace `{"$ref": "#/$defs/X"}` by a copy of X (the spec schemas are not recursive). */
export function inlineRefs(node: unknown, defs: Schema, depth = 0): unknown {
  if (depth > 20) {
    throw new Error('schema nests too deeply (a recursive $ref?)');
  }
  if (Array.isArray(node)) {
    return node.map(item => inlineRefs(item, defs, depth + 1));
  }
  if (!isObject(node)) {
    return node;
  }
  const ref = node['$ref'];
  if (typeof ref === 'string') {
    const name = ref.replace(/^#\/(\$defs|definitions)\//, '');
    const target = defs[name];
    if (!isObject(target)) {
      throw new Error(`schema refers to ${ref}, which it does not define`);
    }
    const { $ref: _ignored, ...rest } = node;
    return inlineRefs({ ...target, ...rest }, defs, depth + 1);
  }
  const out: Schema = {};
  for (const [key, value] of Object.entries(node)) {
    out[key] = inlineRefs(value, defs, depth + 1);
  }
  return out;
}

/**
 * One field made form-friendly: `anyOf: [X, null]` becomes X (none of its inner fields
 * required, since the whole field may stay empty), `x-help` becomes the
 * description, defaults move into the description (an untouched field is not sent,
 * so a profile or the server decides), pydantic/CLI extras are dropped.
 */
export function simplifyField(node: Schema, key?: string): Schema {
  let field: Schema = { ...node };
  const anyOf = field['anyOf'];
  if (Array.isArray(anyOf)) {
    const options = anyOf.filter(o => !(isObject(o) && o['type'] === 'null'));
    if (options.length === 1 && isObject(options[0])) {
      const { anyOf: _drop, ...rest } = field;
      field = { ...options[0], ...rest };
      // an optional object (autoscale MIN:MAX) left empty is not sent: its inner fields must
      // not be `required`, or the empty inputs are :invalid and the dialog disables "Launch"
      delete field['required'];
    }
  }
  const help = field['x-help'];
  const fallback = field['default'];
  const out: Schema = {};
  for (const [k, value] of Object.entries(field)) {
    if (k.startsWith('x-') || k === 'action' || k === 'default') {
      continue;
    }
    out[k] = value;
  }
  let description = typeof help === 'string' ? help : (out['description'] as string | undefined);
  if (fallback !== null && fallback !== undefined && fallback !== false && !isObject(fallback)) {
    description = `${description ? description + '; ' : ''}default ${String(fallback)}`;
  }
  if (description) {
    out['description'] = description;
  }
  if (key && (typeof out['title'] !== 'string' || out['title'] === titleCase(key))) {
    out['title'] = FIELD_TITLES[key] ?? titleCase(key);
  }
  if (key && TEXT_NUMBERS.has(key) && (out['type'] === 'number' || out['type'] === 'integer')) {
    out['type'] = 'string';
  }
  const properties = out['properties'];
  if (isObject(properties)) {
    const next: Schema = {};
    for (const [name, child] of Object.entries(properties)) {
      next[name] = isObject(child) ? simplifyField(child, name) : child;
    }
    out['properties'] = next;
  }
  const items = out['items'];
  if (isObject(items)) {
    out['items'] = simplifyField(items);
  }
  return out;
}

function profileField(profiles: { [name: string]: IProfile }): Schema | null {
  const names = Object.keys(profiles).sort();
  if (!names.length) {
    return null;
  }
  return {
    type: 'string',
    title: 'Profile',
    description: 'a preset from the config; fields you fill in win',
    oneOf: names.map(name => ({
      const: name,
      title: profiles[name].description ? `${name} — ${profiles[name].description}` : name
    }))
  };
}

function backendField(field: Schema, backends: IBackends): Schema {
  const names = Object.keys(backends.backends);
  if (!names.length) {
    return field;
  }
  const { enum: _drop, ...rest } = field;
  return {
    ...rest,
    type: 'string',
    oneOf: names.map(name => {
      const info = backends.backends[name];
      const notes = [
        name === backends.default ? 'default' : '',
        info.available ? '' : 'unavailable'
      ]
        .filter(Boolean)
        .join(', ');
      return { const: name, title: notes ? `${name} (${notes})` : name };
    })
  };
}

/** The schema the launch form renders for `kind`. */
export function formSchema(
  schema: IJSONSchema,
  kind: Kind,
  options: IFormSchemaOptions = {}
): Schema {
  const defs = isObject(schema['$defs']) ? schema['$defs'] : {};
  const inlined = inlineRefs(schema, defs) as Schema;
  const properties = isObject(inlined['properties']) ? inlined['properties'] : {};
  const rawProperties = isObject(schema['properties']) ? (schema['properties'] as Schema) : {};
  const order = options.advanced
    ? [...BASIC_FIELDS[kind], ...Object.keys(properties).sort()]
    : BASIC_FIELDS[kind];
  const fields: Schema = {};
  for (const key of order) {
    const raw = properties[key];
    if (key in fields || NEVER_SHOWN.has(key) || !isObject(raw)) {
      continue;
    }
    let field: Schema | null = simplifyField(raw, key);
    // a field that is a $ref took the model's title ("AdaptRange"): name it after the key
    const own = isObject(rawProperties[key]) ? rawProperties[key]['title'] : undefined;
    field['title'] =
      typeof own === 'string' && own !== titleCase(key)
        ? own
        : (FIELD_TITLES[key] ?? titleCase(key));
    if (key === 'profile') {
      field = profileField(options.profiles ?? {});
    } else if (key === 'backend' && options.backends) {
      field = backendField(field, options.backends);
    }
    if (field) {
      fields[key] = field;
    }
  }
  const required = Array.isArray(inlined['required'])
    ? (inlined['required'] as string[]).filter(key => key in fields)
    : [];
  const out: Schema = { type: 'object', properties: fields };
  if (typeof inlined['description'] === 'string') {
    out['description'] = inlined['description'];
  }
  if (required.length) {
    out['required'] = required;
  }
  return out;
}

/**
 * Layout hints: code as a textarea, no submit button (the dialog has one), and an
 * empty backend that says what the server picks.
 */
export function uiSchema(kind: Kind, backends?: IBackends | null): Schema {
  const ui: Schema = {
    'ui:submitButtonOptions': { norender: true },
    'ui:order': [...BASIC_FIELDS[kind], '*'],
    backend: {
      'ui:placeholder': backends?.default
        ? `server default (${backends.default})`
        : 'server default'
    }
  };
  if (kind === 'pod' || kind === 'train') {
    ui['code'] = { 'ui:widget': 'textarea', 'ui:options': { rows: 8 } };
  }
  if (kind === 'serve') {
    ui['code'] = {
      'ui:widget': 'textarea',
      'ui:options': { rows: 8 },
      'ui:placeholder': SERVE_PLACEHOLDER
    };
  }
  return ui;
}

/** What a served cell looks like, shown in the empty code field. */
export const SERVE_PLACEHOLDER =
  'def predict(inputs):\n    return inputs  # or a kserve.Model subclass with load() and predict()';

function isEmpty(value: unknown): boolean {
  if (value === null || value === undefined || value === '') {
    return true;
  }
  if (Array.isArray(value)) {
    return value.length === 0;
  }
  return isObject(value) && Object.keys(value).length === 0;
}

/** Drop what the user left empty, at any depth, so the server and profile decide it. */
export function cleanFormData(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(cleanFormData).filter(item => !isEmpty(item));
  }
  if (!isObject(value)) {
    return typeof value === 'string' ? value.trim() : value;
  }
  const out: Schema = {};
  for (const [key, child] of Object.entries(value)) {
    const cleaned = cleanFormData(child);
    if (!isEmpty(cleaned)) {
      out[key] = cleaned;
    }
  }
  return out;
}

/** The `POST workloads` body for the form's data. */
export function launchBody(kind: Kind, formData: unknown): Schema {
  const cleaned = cleanFormData(formData);
  return { ...(isObject(cleaned) ? cleaned : {}), kind };
}

/**
 * Fill the fields a profile sets (resources, image) where the form is still empty,
 * so the form shows what the launch will get.
 */
export function applyProfile(formData: Schema, profile: IProfile | undefined): Schema {
  if (!profile) {
    return formData;
  }
  const out: Schema = { ...formData };
  const held = isObject(out['resources']) ? { ...out['resources'] } : {};
  for (const [key, value] of Object.entries(profile.resources ?? {})) {
    if (isEmpty(held[key]) && !isEmpty(value)) {
      held[key] = value;
    }
  }
  if (Object.keys(held).length) {
    out['resources'] = held;
  }
  if (isEmpty(out['image']) && profile.image) {
    out['image'] = profile.image;
  }
  return out;
}
