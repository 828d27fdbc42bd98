/**
 * The launch form's accessible names and per-field errors, without DOM.
 *
 * The server's 400 answer lists every bad field (`fields: [{field, message}]`, field being
 * the spec field name, dotted or not for nested ones): each is mapped to where the form
 * shows it (the rjsf id `root_resources_memory`) and to its label in the form's words
 * ("Resources › Memory").
 */
import type { IErrorBody } from './types';

type Schema = { [key: string]: unknown };

function isObject(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One server-side problem of one field. */
export interface IFieldProblem {
  field: string;
  message: string;
}

/** A problem placed in the form: where the field is and how the form names it. */
export interface IFieldError {
  /** Property path from the form's root, e.g. ["resources", "memory"]. */
  path: string[];
  /** The rjsf id of the input, e.g. "root_resources_memory". */
  id: string;
  /** The field's name in the form ("Resources › Memory"). */
  label: string;
  message: string;
}

/** What a 400 says, split into fields the form shows and a message for the rest. */
export interface IFormErrors {
  fields: IFieldError[];
  /** Fields the form does not show, named in words, with their messages. */
  others: string[];
  /** The top-level message, for when the server lists no fields. */
  message: string;
}

/** The `fields` of an error body, kept only when well formed. */
export function fieldProblems(body: IErrorBody | null | undefined): IFieldProblem[] {
  const raw = (body as { fields?: unknown } | null | undefined)?.fields;
  if (!Array.isArray(raw)) {
    return [];
  }
  const out: IFieldProblem[] = [];
  for (const item of raw) {
    if (
      isObject(item) &&
      typeof item['field'] === 'string' &&
      typeof item['message'] === 'string'
    ) {
      out.push({ field: item['field'], message: item['message'] });
    }
  }
  return out;
}

function title(node: Schema, key: string): string {
  const given = node['title'];
  if (typeof given === 'string' && given) {
    return given;
  }
  return key
    .split('_')
    .map(w => (w ? w[0].toUpperCase() + w.slice(1) : w))
    .join(' ');
}

function propertiesOf(node: unknown): Schema {
  return isObject(node) && isObject(node['properties']) ? node['properties'] : {};
}

/** The rjsf id of a property path. */
export function fieldId(path: readonly string[]): string {
  return ['root', ...path].join('_');
}

/** The path of a field in a form schema: dotted, top level, or inside one object field. */
export function locateField(schema: Schema, field: string): string[] | null {
  const parts = field.split(/[.\/]/).filter(Boolean);
  let node: unknown = schema;
  let ok = parts.length > 0;
  for (const part of parts) {
    const props = propertiesOf(node);
    if (!(part in props)) {
      ok = false;
      break;
    }
    node = props[part];
  }
  if (ok) {
    return parts;
  }
  const leaf = parts[parts.length - 1] ?? field;
  for (const [key, child] of Object.entries(propertiesOf(schema))) {
    if (leaf in propertiesOf(child)) {
      return [key, leaf];
    }
  }
  return null;
}

/** "Resources › Memory": the titles along the path. */
export function fieldLabel(schema: Schema, path: readonly string[]): string {
  const titles: string[] = [];
  let node: unknown = schema;
  for (const key of path) {
    const child = propertiesOf(node)[key];
    titles.push(isObject(child) ? title(child, key) : title({}, key));
    node = child;
  }
  return titles.join(' › ');
}

/** Every input's accessible name, keyed by its rjsf id ("root_resources_cpu" → "Resources › CPU"). */
export function fieldLabels(schema: Schema): { [id: string]: string } {
  const out: { [id: string]: string } = {};
  const walk = (node: unknown, path: string[], titles: string[]): void => {
    for (const [key, child] of Object.entries(propertiesOf(node))) {
      if (!isObject(child)) {
        continue;
      }
      const here = [...path, key];
      const names = [...titles, title(child, key)];
      out[fieldId(here)] = names.join(' › ');
      walk(child, here, names);
    }
  };
  walk(schema, [], []);
  return out;
}

/** Place a 400's problems in the form `schema` (the one with every field). */
export function formErrors(
  schema: Schema,
  body: IErrorBody | null | undefined,
  fallback: string
): IFormErrors {
  const fields: IFieldError[] = [];
  const others: string[] = [];
  for (const problem of fieldProblems(body)) {
    const path = locateField(schema, problem.field);
    if (path) {
      fields.push({
        path,
        id: fieldId(path),
        label: fieldLabel(schema, path),
        message: problem.message
      });
    } else {
      others.push(`${title({}, problem.field.replace(/\./g, ' '))}: ${problem.message}`);
    }
  }
  return { fields, others, message: fallback };
}

/** The errors as rjsf's `extraErrors` (an error schema: `{resources: {memory: {__errors}}}`). */
export function extraErrors(errors: readonly IFieldError[]): Schema {
  const out: Schema = {};
  for (const error of errors) {
    let node = out;
    for (const key of error.path) {
      if (!isObject(node[key])) {
        node[key] = {};
      }
      node = node[key] as Schema;
    }
    const list = Array.isArray(node['__errors']) ? (node['__errors'] as string[]) : [];
    node['__errors'] = [...list, error.message];
  }
  return out;
}

/** The line above the form: every bad field named, or the server's message. */
export function errorSummary(errors: IFormErrors): string {
  const named = [...errors.fields.map(e => `${e.label}: ${e.message}`), ...errors.others];
  if (!named.length) {
    return errors.message;
  }
  const head =
    named.length === 1 ? '1 field needs a change' : `${named.length} fields need a change`;
  return `${head} — ${named.join('; ')}`;
}

/** Whether a field error sits among the form's top-level fields `shown`. */
export function hiddenErrors(errors: readonly IFieldError[], shown: readonly string[]): boolean {
  return errors.some(error => !shown.includes(error.path[0]));
}

/** A worker count typed in the scale field: a whole number from 0 to `max`, or why not. */
export function parseCount(
  text: string,
  what = 'workers',
  max = 1000
): { value: number; error: null } | { value: null; error: string } {
  const trimmed = text.trim();
  if (!trimmed) {
    return { value: null, error: `enter the number of ${what} (0 to ${max})` };
  }
  const value = Number(trimmed);
  if (!Number.isFinite(value)) {
    return { value: null, error: `"${trimmed}" is not a number: enter 0 to ${max} ${what}` };
  }
  if (!Number.isInteger(value)) {
    return { value: null, error: `${trimmed} is not a whole number of ${what}` };
  }
  if (value < 0 || value > max) {
    return { value: null, error: `${value} ${what} is out of range: enter 0 to ${max}` };
  }
  return { value, error: null };
}
