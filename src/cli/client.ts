// The HTTP client of the CLI: one place that adds the token, turns API error bodies into
// ApiError and a refused connection into a message naming the endpoint.
import { ApiError, CliError } from './errors.js';
import type { Target } from './config.js';

export type Query = Record<string, string | number | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface ApiResponse<T = unknown> { status: number; headers: Headers; body: T }

export class Client {
  constructor(readonly target: Target) {}

  url(path: string, query: Query = {}): string {
    const u = new URL(this.target.endpoint + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) u.searchParams.append(k, String(v));
    return u.toString();
  }

  /** Send a request and return the raw response (any status); network failures become CliError. */
  async fetch(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
    if (this.target.token) headers.authorization = `Bearer ${this.target.token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    try {
      return await fetch(this.url(path, opts.query), { method, headers, body, signal: opts.signal });
    } catch (e) {
      throw connectionError(this.target.endpoint, e);
    }
  }

  /** A JSON request: 2xx → parsed body (undefined for 204); anything else → ApiError. */
  async request<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse<T>> {
    const res = await this.fetch(method, path, opts);
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw connectionError(this.target.endpoint, e);
    }
    if (!res.ok) throw apiError(res.status, res.statusText, text, this.target.endpoint);
    let body: unknown = undefined;
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        throw new CliError(`${method} ${path} at ${this.target.endpoint} answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
      }
    }
    return { status: res.status, headers: res.headers, body: body as T };
  }

  get<T = unknown>(path: string, query?: Query, signal?: AbortSignal) {
    return this.request<T>('GET', path, { query, signal });
  }
  post<T = unknown>(path: string, body?: unknown) {
    return this.request<T>('POST', path, { body: body ?? {} });
  }
}

/** Build the ApiError for a non-2xx answer; bodies that are not the documented JSON still say something useful. */
export function apiError(status: number, statusText: string, text: string, endpoint: string): ApiError {
  let kind = `http ${status}`;
  let message = `the server at ${endpoint} answered ${status} ${statusText}`.trim();
  let field: string | undefined;
  try {
    const b = JSON.parse(text) as Record<string, unknown>;
    if (b && typeof b === 'object') {
      if (typeof b.error === 'string') kind = b.error;
      if (typeof b.message === 'string') message = b.message;
      else if (typeof b.error === 'string') message = b.error;
      if (typeof b.field === 'string' && b.field) field = b.field;
    }
  } catch {
    if (text.trim()) message += `: ${text.trim().slice(0, 200)}`;
  }
  let hint: string | undefined;
  if (status === 401) hint = `log in with \`fulcrum login --endpoint ${endpoint} --user NAME --password PW\`, or pass --token / set FULCRUM_TOKEN`;
  return new ApiError(status, kind, message, field, hint);
}

/** fetch() throws TypeError('fetch failed') with the socket error as its cause. */
export function connectionError(endpoint: string, e: unknown): CliError {
  if (e instanceof CliError) return e;
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === 'TimeoutError') return new CliError(`the Fulcrum server at ${endpoint} did not answer in time`);
  if (err?.name === 'AbortError') return new CliError(`request to ${endpoint} was aborted`);
  const code = err?.cause?.code;
  const hint = 'start it with `fulcrum server`, or point the CLI elsewhere with --endpoint or FULCRUM_ENDPOINT';
  switch (code) {
    case 'ECONNREFUSED':
      return new CliError(`cannot connect to the Fulcrum server at ${endpoint}: connection refused`, 1, hint);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new CliError(`cannot connect to the Fulcrum server at ${endpoint}: host not found`, 1, hint);
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return new CliError(`the connection to the Fulcrum server at ${endpoint} was closed unexpectedly`, 1, hint);
    default: {
      // fetch refuses ports of other protocols (WHATWG Fetch "bad port"), e.g. 9, 25, 6000.
      if (err?.cause?.message === 'bad port') {
        return new CliError(`cannot connect to ${endpoint}: fetch refuses that port (it belongs to another protocol); serve Fulcrum on another port`);
      }
      const detail = err?.cause?.message ?? err?.message ?? String(e);
      return new CliError(`cannot talk to the Fulcrum server at ${endpoint}: ${detail}`, 1, hint);
    }
  }
}
