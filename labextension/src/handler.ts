/**
 * The one way this extension talks to its server extension.
 *
 * `ServerConnection.makeRequest` adds the token and the XSRF header; this helper
 * adds the base path, JSON in and out, and errors that carry the server's
 * `message` and `hint`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { IErrorBody } from './types';

/** Where the server extension answers, under the server's base URL. */
export const API_PATH = 'workbench/api';

/** A non-2xx answer, with what the server said about it. */
export class APIError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly hint: string = '',
    readonly body: IErrorBody = {}
  ) {
    super(message);
    this.name = 'APIError';
  }

  /** "message — hint", the line to show a user. */
  get detail(): string {
    return this.hint ? `${this.message} — ${this.hint}` : this.message;
  }
}

export interface IRequestOptions {
  method?: 'GET' | 'POST' | 'DELETE';
  /** Sent as JSON. */
  body?: unknown;
  query?: { [key: string]: string | number | boolean | undefined };
  signal?: AbortSignal;
  settings?: ServerConnection.ISettings;
}

/** The absolute URL of an API endpoint such as `workloads/NAME/logs`. */
export function apiURL(
  endpoint: string,
  query: IRequestOptions['query'] = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  const params: { [key: string]: string } = {};
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== '') {
      params[key] = String(value);
    }
  }
  return URLExt.join(settings.baseUrl, API_PATH, endpoint) + URLExt.objectToQueryString(params);
}

async function errorFrom(response: Response): Promise<APIError> {
  const text = await response.text();
  let body: IErrorBody = {};
  try {
    body = JSON.parse(text) as IErrorBody;
  } catch {
    // not ours (an HTML error page, a proxy): keep a short plain-text answer only
    const plain = (response.headers.get('Content-Type') ?? '').startsWith('text/plain');
    body = plain && text.length < 300 ? { message: text.trim() } : {};
  }
  const message = body.message || body.error || `${response.status} ${response.statusText}`.trim();
  let hint = body.hint ?? '';
  if (!hint && response.status === 404 && !body.error) {
    hint = 'is the workbench server extension enabled? (jupyter server extension list)';
  }
  return new APIError(response.status, message, hint, body);
}

/** Send a request; a network failure or non-2xx answer throws. */
export async function send(endpoint: string, options: IRequestOptions = {}): Promise<Response> {
  const settings = options.settings ?? ServerConnection.makeSettings();
  const init: RequestInit = { method: options.method ?? 'GET', signal: options.signal };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      apiURL(endpoint, options.query, settings),
      init,
      settings
    );
  } catch (error) {
    if (options.signal?.aborted) {
      throw error;
    }
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  if (!response.ok) {
    throw await errorFrom(response);
  }
  return response;
}

/**
 * Call the API and decode the JSON answer as `T` (`undefined` for 204).
 */
export async function requestAPI<T>(endpoint: string, options: IRequestOptions = {}): Promise<T> {
  const response = await send(endpoint, options);
  if (response.status === 204) {
    return undefined as T;
  }
  const text = await response.text();
  if (!text) {
    return undefined as T;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new APIError(
      response.status,
      `the server answered ${endpoint} with something that is not JSON`
    );
  }
}

/** A message for any error a request can throw. */
export function errorMessage(error: unknown): string {
  if (error instanceof APIError) {
    return error.detail;
  }
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}
