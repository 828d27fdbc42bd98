/**
 * The batch dialog's state: a notebook's declared parameters (papermill's `inspect_notebook`,
 * `GET notebook-parameters`) as typed form fields, parsed back into values, and the launch body.
 * Pure: no DOM, no server calls (the tests use it directly).
 */

/** One declared parameter: `default` is the Python source text of its default. */
export interface INotebookParameter {
  name: string;
  type: string;
  default: string;
  help: string;
}

/** `GET notebook-parameters?path=`. */
export interface INotebookParameters {
  path: string;
  name: string;
  parameters: INotebookParameter[];
}

/** How a parameter is edited: a number field, a checkbox, text, JSON, or free Python-ish text. */
export type FieldKind = 'int' | 'float' | 'bool' | 'str' | 'list' | 'dict' | 'any';

export function fieldKind(type: string): FieldKind {
  const t = (type || '').trim().toLowerCase();
  if (t === 'int' || t === 'float' || t === 'bool' || t === 'str' || t === 'list' || t === 'dict') {
    return t;
  }
  if (t === 'integer') {
    return 'int';
  }
  if (t === 'string') {
    return 'str';
  }
  return 'any';
}

/** The text of a Python string literal ('a', "b", with simple escapes); null if not one. */
export function pythonString(source: string): string | null {
  const match = /^([rRbBuU]?)('''|"""|'|")([\s\S]*)\2$/.exec(source.trim());
  if (!match) {
    return null;
  }
  const body = match[3];
  if (match[1].toLowerCase() === 'r') {
    return body;
  }
  return body.replace(/\\(n|t|\\|'|")/g, (_, c: string) =>
    c === 'n' ? '\n' : c === 't' ? '\t' : c
  );
}

/** A Python literal (list, dict, number, True/False/None, strings) as JSON text, if it is one. */
export function pythonToJSON(source: string): string | null {
  let out = '';
  const text = source.trim();
  for (let i = 0; i < text.length;) {
    const c = text[i];
    if (c === "'" || c === '"') {
      let j = i + 1;
      let value = '';
      while (j < text.length && text[j] !== c) {
        if (text[j] === '\\' && j + 1 < text.length) {
          value += text[j + 1] === 'n' ? '\n' : text[j + 1];
          j += 2;
        } else {
          value += text[j++];
        }
      }
      if (j >= text.length) {
        return null;
      }
      out += JSON.stringify(value);
      i = j + 1;
      continue;
    }
    const word = /^[A-Za-z_]\w*/.exec(text.slice(i));
    if (word) {
      const replaced = { True: 'true', False: 'false', None: 'null' }[word[0]];
      if (!replaced) {
        return null;
      }
      out += replaced;
      i += word[0].length;
      continue;
    }
    out += c === '(' ? '[' : c === ')' ? ']' : c;
    i++;
  }
  try {
    JSON.parse(out);
  } catch {
    return null;
  }
  return out;
}

/** What the form shows first for a parameter: its default, in the field's terms. */
export function initialValue(parameter: INotebookParameter): string | boolean {
  const source = (parameter.default ?? '').trim();
  switch (fieldKind(parameter.type)) {
    case 'bool':
      return source === 'True';
    case 'str':
      return pythonString(source) ?? source;
    case 'list':
    case 'dict':
      return pythonToJSON(source) ?? source;
    case 'any':
      return source === 'None' ? '' : (pythonToJSON(source) ?? source);
    default:
      return source;
  }
}

/** The value to send for what the user entered, or an error in UI words. */
export function parseValue(
  parameter: INotebookParameter,
  raw: string | boolean
): { value: unknown } | { error: string } {
  const kind = fieldKind(parameter.type);
  if (kind === 'bool') {
    return { value: raw === true || raw === 'true' || raw === 'True' };
  }
  const text = String(raw);
  const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
  switch (kind) {
    case 'int':
      return /^\s*[+-]?\d+\s*$/.test(text)
        ? { value: Number(text) }
        : { error: `${parameter.name} must be a whole number (got '${shown}')` };
    case 'float': {
      const value = Number(text);
      return text.trim() !== '' && Number.isFinite(value)
        ? { value }
        : { error: `${parameter.name} must be a number like 0.5 (got '${shown}')` };
    }
    case 'str':
      return { value: text };
    case 'list':
    case 'dict': {
      const example = kind === 'list' ? '[1, 2]' : '{"a": 1}';
      try {
        const value: unknown = JSON.parse(text);
        const ok = kind === 'list' ? Array.isArray(value) : isObject(value);
        if (ok) {
          return { value };
        }
      } catch {
        // fall through to the message
      }
      return { error: `${parameter.name} must be a JSON ${kind} like ${example} (got '${shown}')` };
    }
    default:
      if (text.trim() === '') {
        return { value: null };
      }
      try {
        return { value: JSON.parse(text) as unknown };
      } catch {
        return { value: text };
      }
  }
}

function isObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What the dialog holds. */
export interface IBatchForm {
  notebook: string;
  name: string;
  backend: string;
  /** Only sent for Kubernetes. */
  schedule: string;
  cpu: string;
  memory: string;
  gpus: string;
  /** Raw field values by parameter name. */
  values: { [name: string]: string | boolean };
}

export function initialForm(
  notebook: string,
  declared: INotebookParameters | null,
  backend: string
): IBatchForm {
  const values: { [name: string]: string | boolean } = {};
  for (const parameter of declared?.parameters ?? []) {
    values[parameter.name] = initialValue(parameter);
  }
  return {
    notebook,
    name: declared?.name ?? '',
    backend,
    schedule: '',
    cpu: '',
    memory: '',
    gpus: '',
    values
  };
}

/** A field's problem, keyed by the form field (`parameters.NAME` for parameters). */
export interface IFieldError {
  field: string;
  message: string;
}

/**
 * The POST workloads body, or every bad field. Only parameters changed from their default go
 * out (the notebook's own defaults apply to the rest).
 */
export function batchBody(
  form: IBatchForm,
  declared: readonly INotebookParameter[]
): { body: { [key: string]: unknown } } | { errors: IFieldError[] } {
  const errors: IFieldError[] = [];
  const parameters: { [name: string]: unknown } = {};
  for (const parameter of declared) {
    const raw = form.values[parameter.name];
    if (raw === undefined || raw === initialValue(parameter)) {
      continue;
    }
    const parsed = parseValue(parameter, raw);
    if ('error' in parsed) {
      errors.push({ field: `parameters.${parameter.name}`, message: parsed.error });
    } else {
      parameters[parameter.name] = parsed.value;
    }
  }
  const body: { [key: string]: unknown } = { kind: 'notebook', notebook: form.notebook };
  if (form.name.trim()) {
    body['name'] = form.name.trim();
  }
  if (form.backend) {
    body['backend'] = form.backend;
  }
  if (Object.keys(parameters).length) {
    body['parameters'] = parameters;
  }
  const resources: { [key: string]: unknown } = {};
  if (form.cpu.trim()) {
    resources['cpu'] = form.cpu.trim();
  }
  if (form.memory.trim()) {
    resources['memory'] = form.memory.trim();
  }
  if (form.gpus.trim()) {
    if (/^\d+$/.test(form.gpus.trim())) {
      resources['gpus'] = Number(form.gpus.trim());
    } else {
      errors.push({
        field: 'gpus',
        message: `GPUs must be a whole number (got '${form.gpus.trim()}')`
      });
    }
  }
  if (Object.keys(resources).length) {
    body['resources'] = resources;
  }
  if (form.backend === 'kubernetes' && form.schedule.trim()) {
    body['schedule'] = form.schedule.trim();
  }
  return errors.length ? { errors } : { body };
}

/** The server's 400 `fields` mapped to the dialog's fields (unknown ones go to the top). */
export function serverFieldErrors(body: unknown): IFieldError[] {
  const fields = (body as { fields?: unknown } | null)?.fields;
  if (!Array.isArray(fields)) {
    return [];
  }
  return fields
    .filter(
      (f): f is { field: string; message: string } =>
        typeof f === 'object' &&
        f !== null &&
        typeof (f as { field?: unknown }).field === 'string' &&
        typeof (f as { message?: unknown }).message === 'string'
    )
    .map(f => ({ field: f.field.replace(/^resources\./, ''), message: f.message }));
}
