// `fulcrum events`: tail the event stream over Server-Sent Events (WHATWG HTML §9.2 "Server-sent
// events"), reconnecting from the last seen event id when the connection drops.
import YAML from 'yaml';
import { apiError, type Client, type Query } from './client.js';
import { CliError } from './errors.js';
import type { Format } from './output.js';

export interface SseFrame { id?: string; event: string; data: string }

/**
 * Incremental SSE parser: feed it text as it arrives, get back complete frames.
 * Lines end in CRLF, LF or CR; `:` lines are comments; a blank line dispatches the frame;
 * several `data:` lines join with "\n"; a frame without data is not dispatched.
 */
export class SseParser {
  private buf = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;
  private afterCR = false;
  /** The last `id:` seen, kept across frames as the spec says: where to resume from. */
  lastEventId: string | undefined;

  /** Drop a half-received frame (the connection broke) but remember where to resume. */
  reset(): void {
    this.buf = '';
    this.data = [];
    this.event = '';
    this.afterCR = false;
  }

  push(chunk: string): SseFrame[] {
    // A CR ending the previous chunk was a line end already; a LF right after it belongs to it.
    if (this.afterCR && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.afterCR = false;
    this.buf += chunk;
    const frames: SseFrame[] = [];
    let m: RegExpExecArray | null;
    while ((m = /\r\n|\n|\r/.exec(this.buf))) {
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      if (m[0] === '\r' && this.buf === '') this.afterCR = true;
      const frame = this.line(line);
      if (frame) frames.push(frame);
    }
    return frames;
  }

  private line(line: string): SseFrame | undefined {
    if (line === '') {
      const frame = this.data.length ? { id: this.id, event: this.event || 'message', data: this.data.join('\n') } : undefined;
      this.data = [];
      this.event = '';
      return frame;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = this.lastEventId = value;
    return undefined;
  }
}

export type FulcrumEvent = Record<string, unknown>;

/** The event carried by a frame: its JSON data, with the frame's id and type when the data lacks them. */
export function frameEvent(frame: SseFrame): FulcrumEvent | undefined {
  let data: unknown;
  try {
    data = JSON.parse(frame.data);
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  const ev = { ...(data as FulcrumEvent) };
  if (ev.id === undefined && frame.id !== undefined) ev.id = /^\d+$/.test(frame.id) ? Number(frame.id) : frame.id;
  if (ev.type === undefined && frame.event !== 'message') ev.type = frame.event;
  return ev;
}

const scalar = (v: unknown) => v === null || ['string', 'number', 'boolean'].includes(typeof v);

function short(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  const one = s.replace(/\s*\n\s*/g, ' ');
  return one.length > 60 ? one.slice(0, 59) + '…' : one;
}

/** One line: time, type, object (`kind/id`), summary (state change first, then scalar payload fields). */
export function formatEvent(ev: FulcrumEvent): string {
  const time = String(ev.at ?? ev.time ?? '-');
  const type = String(ev.type ?? '-');
  const kind = ev.object_kind ?? ev.object ?? '';
  const oid = ev.object_id ?? '';
  const object = kind !== '' || oid !== '' ? `${String(kind)}${oid !== '' && oid !== null ? `/${String(oid)}` : ''}` : '-';
  const payload = (typeof ev.payload === 'object' && ev.payload !== null ? ev.payload : {}) as Record<string, unknown>;
  const parts: string[] = [];
  if (payload.from !== undefined || payload.to !== undefined) parts.push(`${short(payload.from ?? '?')} -> ${short(payload.to ?? '?')}`);
  for (const [k, v] of Object.entries(payload)) {
    if (k === 'from' || k === 'to' || v === undefined) continue;
    parts.push(`${k}=${scalar(v) ? short(v) : short(JSON.stringify(v))}`);
  }
  let summary = parts.join(' ');
  if (summary.length > 160) summary = summary.slice(0, 159) + '…';
  return [time, type, object, summary].filter((s) => s !== '').join('  ');
}

export function renderEvent(ev: FulcrumEvent, format: Format): string {
  if (format === 'json') return JSON.stringify(ev) + '\n';
  if (format === 'yaml') return '---\n' + YAML.stringify(ev);
  return formatEvent(ev) + '\n';
}

export interface TailOptions {
  query: Query;
  format: Format;
  write: (s: string) => void;
  /** Note on stderr when the stream drops and is resumed. */
  note: (s: string) => void;
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

/**
 * Follow the stream until aborted. A dropped connection is resumed with `since=<last id>`
 * (and Last-Event-ID), waiting up to 5 s between attempts; API errors (bad filter, 401) end it.
 */
export async function tailEvents(client: Client, opts: TailOptions): Promise<void> {
  const parser = new SseParser();
  let backoff = 500;
  while (!opts.signal?.aborted) {
    const query: Query = { ...opts.query };
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (parser.lastEventId !== undefined) {
      query.since = parser.lastEventId;
      headers['last-event-id'] = parser.lastEventId;
    }
    let res: Response;
    try {
      res = await client.fetch('GET', '/api/v1/events', { query, headers, signal: opts.signal });
    } catch (e) {
      if (opts.signal?.aborted) return;
      opts.note(`${(e as Error).message}; retrying in ${backoff / 1000}s`);
      await sleep(backoff, opts.signal);
      backoff = Math.min(5000, backoff * 2);
      continue;
    }
    // A refused filter or token will not get better by retrying.
    if (!res.ok) throw apiError(res.status, res.statusText, await res.text(), client.target.endpoint);
    if (!(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      throw new CliError(`the server at ${client.target.endpoint} did not answer /api/v1/events with an event stream (content-type ${res.headers.get('content-type') ?? 'none'})`);
    }
    backoff = 500;
    parser.reset();
    try {
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        for (const frame of parser.push(decoder.decode(chunk, { stream: true }))) {
          const ev = frameEvent(frame);
          if (ev) opts.write(renderEvent(ev, opts.format));
        }
      }
      if (opts.signal?.aborted) return;
      opts.note('the event stream ended; reconnecting');
    } catch (e) {
      if (opts.signal?.aborted) return;
      opts.note(`the event stream broke (${(e as Error).message}); reconnecting`);
    }
    await sleep(backoff, opts.signal);
    backoff = Math.min(5000, backoff * 2);
  }
}
