// Webhooks (DESIGN.md §2 "Hooks and events": external consumers get webhooks, retried and signed).
// Two leader-side steps over the table webhook_deliveries, which is itself the retry queue:
//   enqueueDeliveries — for committed events read from the durable cursor, one pending row per
//                       (matching webhook, event); repeats are harmless (at-least-once callers).
//   deliverDue        — lease due rows in a one-statement transaction, POST them with no database
//                       lock held, then record the outcome: delivered, retry later, or dead.
// The signature scheme is documented in docs/api.md "Webhooks"; receivers use verifySignature.
import crypto from 'node:crypto';
import type { Store } from '../store/db.js';
import { emit, type Event } from './outbox.js';
import { matches } from './stream.js';

export const SIGNATURE_PREFIX = 'sha256=';
/** How far a receiver's clock may be from the signed timestamp before verifySignature refuses it. */
export const DEFAULT_TOLERANCE_SEC = 300;
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_LIMIT = 50;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_CAP_MS = 10 * 60 * 1000;
/** A leased row comes back due this long after its request's timeout if the leader dies meanwhile. */
const LEASE_MARGIN_MS = 30_000;

/**
 * The `x-fulcrum-signature` value: `sha256=` + hex HMAC-SHA256, keyed with the webhook secret,
 * over `${timestamp}.${body}` — the timestamp as sent in `x-fulcrum-timestamp` (unix seconds),
 * a dot, then the exact body bytes. Signing the timestamp lets receivers refuse replays.
 */
export function signature(secret: string, timestamp: string, body: string | Uint8Array): string {
  const mac = crypto.createHmac('sha256', secret);
  mac.update(`${timestamp}.`, 'utf8');
  mac.update(body);
  return SIGNATURE_PREFIX + mac.digest('hex');
}

/**
 * For receivers: true when `header` is the signature of exactly these body bytes at `timestamp`,
 * and the timestamp is within `toleranceSec` of `now` (ms). Compared in constant time.
 */
export function verifySignature(
  secret: string, timestamp: string, body: string | Uint8Array, header: string | undefined,
  opts: { toleranceSec?: number; now?: number } = {},
): boolean {
  if (!header || !/^\d+$/.test(timestamp)) return false;
  const age = Math.abs((opts.now ?? Date.now()) / 1000 - Number(timestamp));
  if (age > (opts.toleranceSec ?? DEFAULT_TOLERANCE_SEC)) return false;
  const expected = Buffer.from(signature(secret, timestamp, body), 'utf8');
  const given = Buffer.from(header.trim(), 'utf8');
  // timingSafeEqual needs equal lengths; the length of a well-formed signature is no secret.
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

/**
 * Delay before the next attempt after `attempts` failed ones: 1 s × 2^(attempts-1), capped at
 * 10 min, shortened by up to 10 % of jitter (so retries still strictly grow until the cap and
 * receivers that failed together do not all retry in the same millisecond).
 */
export function backoffMs(attempts: number, random: () => number = Math.random): number {
  const base = Math.min(BACKOFF_BASE_MS * 2 ** Math.max(0, attempts - 1), BACKOFF_CAP_MS);
  return Math.round(base * (1 - 0.1 * random()));
}

interface WebhookRow { id: number; types: string[] }

/** Whether webhook `w` wants event `e`: its type prefixes match (empty: every event). */
function wants(w: WebhookRow, e: Event): boolean {
  // A webhook is not told about its own dead deliveries: if it is down that would only feed a loop.
  if (e.type === 'webhook.dead' && e.object_id === w.id) return false;
  return matches({ types: w.types }, e);
}

/**
 * Queue a pending delivery for every (active webhook, event) pair that matches. Idempotent:
 * a pair already queued (in any state) is left alone. Returns how many rows were added.
 */
export async function enqueueDeliveries(store: Store, events: Event[]): Promise<number> {
  if (events.length === 0) return 0;
  const hooks = (await store.query<WebhookRow>(`SELECT id, types FROM webhooks WHERE active ORDER BY id`)).rows;
  const webhookIds: number[] = [];
  const eventIds: number[] = [];
  for (const e of events) for (const w of hooks) if (wants(w, e)) { webhookIds.push(w.id); eventIds.push(e.id); }
  if (webhookIds.length === 0) return 0;
  // The joins drop pairs whose webhook was deactivated or deleted since the read above.
  const r = await store.query(
    `INSERT INTO webhook_deliveries (webhook_id, event_id)
     SELECT p.webhook_id, p.event_id FROM unnest($1::bigint[], $2::bigint[]) AS p(webhook_id, event_id)
       JOIN webhooks w ON w.id = p.webhook_id AND w.active
       JOIN events e ON e.id = p.event_id
     ON CONFLICT (webhook_id, event_id) DO NOTHING`,
    [webhookIds, eventIds],
  );
  return r.rowCount ?? 0;
}

interface Claimed {
  id: number; attempts: number;
  webhook_id: number; webhook_name: string; url: string; secret: string; max_attempts: number;
  event_id: number; type: string; object_kind: string; object_id: number | null;
  deployment_id: number | null; node_id: number | null; payload: Record<string, unknown>; at: Date | string;
}

type Outcome = { ok: true } | { ok: false; error: string };

/** The body a receiver gets: the event, as the events API shows it. */
export function deliveryBody(e: Pick<Claimed, 'type' | 'object_kind' | 'object_id' | 'deployment_id' | 'node_id' | 'payload' | 'at'> & { id: number }): string {
  return JSON.stringify({
    id: e.id, type: e.type, object_kind: e.object_kind, object_id: e.object_id,
    deployment_id: e.deployment_id, node_id: e.node_id, payload: e.payload,
    at: e.at instanceof Date ? e.at.toISOString() : e.at,
  });
}

async function post(d: Claimed, timeoutMs: number): Promise<Outcome> {
  const body = deliveryBody({ ...d, id: d.event_id });
  const timestamp = String(Math.floor(Date.now() / 1000));
  try {
    const res = await fetch(d.url, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'fulcrum-webhooks',
        'x-fulcrum-event': d.type,
        'x-fulcrum-delivery': String(d.id),
        'x-fulcrum-timestamp': timestamp,
        'x-fulcrum-signature': signature(d.secret, timestamp, body),
      },
      // A redirect is a failure: the signed body is not forwarded to wherever a receiver points.
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    // Only the status matters; drop the body so the connection is freed.
    await res.body?.cancel().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return { ok: true };
    return { ok: false, error: `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}` };
  } catch (err) {
    const e = err as Error & { cause?: { message?: string; code?: string } };
    let error: string;
    if (e.name === 'TimeoutError') error = `no answer within ${timeoutMs} ms`;
    else error = e.cause?.message ? `${e.message}: ${e.cause.message}` : e.message;
    // Never let the secret reach last_error, logs or the webhook.dead event, however it got there.
    return { ok: false, error: error.split(d.secret).join('***').slice(0, 500) };
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

/**
 * POST every due pending delivery (up to `limit`, default 50) and record the outcomes.
 * Returns how many were `delivered`, how many attempts `failed` and will be retried, and how
 * many deliveries went `dead` (their last attempt failed at the webhook's max_attempts).
 * Deliveries of a paused (inactive) webhook stay pending until it is active again.
 */
export async function deliverDue(
  store: Store, opts: { log?: (m: string) => void; timeoutMs?: number; limit?: number } = {},
): Promise<{ delivered: number; failed: number; dead: number }> {
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const limit = opts.limit ?? DEFAULT_LIMIT;
  // The claim is one statement (its own short transaction): rows are leased by moving
  // next_attempt_at past the request's timeout, so no row lock is held during the POST and a
  // second claimer (or this one after a crash) sees them again only once the lease runs out.
  const claimed = (await store.query<Claimed>(
    `WITH due AS (
       SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
        WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND w.active
        ORDER BY d.next_attempt_at, d.id
        LIMIT $1
        FOR UPDATE OF d SKIP LOCKED)
     UPDATE webhook_deliveries d SET next_attempt_at = now() + $2::double precision * interval '1 millisecond'
       FROM due, webhooks w, events e
      WHERE d.id = due.id AND w.id = d.webhook_id AND e.id = d.event_id
     RETURNING d.id, d.attempts, w.id AS webhook_id, w.name AS webhook_name, w.url, w.secret, w.max_attempts,
               e.id AS event_id, e.type, e.object_kind, e.object_id, e.deployment_id, e.node_id, e.payload, e.at`,
    [limit, timeoutMs + LEASE_MARGIN_MS],
  )).rows;

  const result = { delivered: 0, failed: 0, dead: 0 };
  await Promise.all(claimed.map(async (d) => {
    const outcome = await post(d, timeoutMs);
    try {
      await record(store, d, outcome, result, log);
    } catch (err) {
      // The lease runs out and the delivery is tried again: at-least-once, never lost.
      log(`webhook ${d.webhook_name}: could not record delivery ${d.id}: ${(err as Error).message}`);
    }
  }));
  return result;
}

async function record(
  store: Store, d: Claimed, outcome: Outcome,
  result: { delivered: number; failed: number; dead: number }, log: (m: string) => void,
): Promise<void> {
  if (outcome.ok) {
    const r = await store.query(
      `UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1, last_error = NULL
        WHERE id = $1 AND state = 'pending'`, [d.id]);
    if (r.rowCount) result.delivered++;
    return;
  }
  const attempts = d.attempts + 1;
  const delay = backoffMs(attempts);
  await store.tx(async (tx) => {
    // max_attempts is read again: an operator may have changed it while the POST was out.
    const r = await tx.query<{ attempts: number; state: string; max_attempts: number }>(
      `UPDATE webhook_deliveries d
          SET attempts = d.attempts + 1, last_error = $2,
              state = CASE WHEN d.attempts + 1 >= w.max_attempts THEN 'dead' ELSE 'pending' END,
              next_attempt_at = now() + $3::double precision * interval '1 millisecond'
         FROM webhooks w
        WHERE d.id = $1 AND d.state = 'pending' AND w.id = d.webhook_id
       RETURNING d.attempts, d.state, w.max_attempts`,
      [d.id, outcome.error, delay],
    );
    const row = r.rows[0];
    if (!row) return; // deleted, or recorded by someone else meanwhile
    const what = `webhook ${d.webhook_name}: delivery ${d.id} of event ${d.event_id} (${d.type}), attempt ${row.attempts}/${row.max_attempts}, failed: ${outcome.error}`;
    if (row.state === 'dead') {
      result.dead++;
      await emit(tx, {
        type: 'webhook.dead', object_kind: 'webhook', object_id: d.webhook_id,
        payload: { delivery: d.id, event: d.event_id, event_type: d.type, attempts: row.attempts, last_error: outcome.error },
      });
      log(`${what}; giving up: the delivery stays 'dead' and a webhook.dead event was recorded; check the receiver at ${redact(d.url)}`);
    } else {
      result.failed++;
      log(`${what}; next attempt in ${seconds(delay)}`);
    }
  });
}

/** A URL for the log without any user:password part. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = ''; u.password = '';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}
