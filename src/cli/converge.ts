// `fulcrum converge`: wait for the annealer to finish a deployment (or everything), showing
// progress, and exit 0 (converged), 1 (a noderole failed) or 2 (timed out).
import YAML from 'yaml';
import type { Client } from './client.js';
import { ApiError, CliError } from './errors.js';
import type { Format } from './output.js';

/** GET /api/v1/anneal (docs/api.md "Actions"). */
export interface AnnealSummary {
  finished: number;
  working: number;
  scheduled: number;
  failed: number;
  blocked: number;
  proposed: number;
  total: number;
  running?: Array<Record<string, unknown>>;
  errors?: FailedNodeRole[];
}

export interface FailedNodeRole {
  id: number | string;
  node?: unknown;
  role?: unknown;
  deployment?: unknown;
  state?: string;
  runlog?: string;
  /** Set while an automatic retry is pending: the failure is not final yet. */
  retry_at?: string | null;
  [k: string]: unknown;
}

export type Verdict = 'converged' | 'failed' | 'waiting';

/** How long an empty summary (no noderoles yet) is waited on before it counts as converged. */
export const EMPTY_GRACE_MS = 2000;

export const EXIT = { converged: 0, failed: 1, timeout: 2 } as const;

/**
 * The decision, from one summary:
 * - failed: some noderole is in ERROR with no automatic retry pending (every ERROR listed in
 *   `errors` with a `retry_at` means the annealer will try again, so keep waiting);
 * - converged: nothing scheduled, working or blocked, and no ERROR; with no noderoles at all,
 *   only once EMPTY_GRACE_MS has passed (bindings made just before may not be visible yet);
 * - waiting otherwise.
 */
export function convergeVerdict(s: AnnealSummary, elapsedMs: number): Verdict {
  if (s.failed > 0) {
    const errors = s.errors ?? [];
    const allRetrying = errors.length >= s.failed && errors.every((e) => e.retry_at !== undefined && e.retry_at !== null);
    if (!allRetrying) return 'failed';
    return 'waiting';
  }
  if (s.scheduled + s.working + s.blocked > 0) return 'waiting';
  if (s.total === 0 && elapsedMs < EMPTY_GRACE_MS) return 'waiting';
  return 'converged';
}

/** What counts as a change worth a new progress line on a non-TTY. */
export function countsKey(s: AnnealSummary): string {
  return [s.finished, s.working, s.scheduled, s.blocked, s.failed, s.proposed, s.total].join('/');
}

export function progressBar(done: number, total: number, width = 24): string {
  const filled = total > 0 ? Math.min(width, Math.round((done / total) * width)) : 0;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

export function progressLine(s: AnnealSummary, elapsedMs: number): string {
  return `${progressBar(s.finished, s.total)} ${s.finished}/${s.total} finished  ${s.working} working  ${s.scheduled} scheduled  ` +
    `${s.blocked} blocked  ${s.failed} failed  ${s.proposed} proposed  ${Math.floor(elapsedMs / 1000)}s`;
}

export function lastLines(text: string, n: number): string[] {
  const lines = text.replace(/\n+$/, '').split('\n');
  return text.trim() === '' ? [] : lines.slice(-n);
}

const name = (v: unknown) => (v === undefined || v === null ? '?' : typeof v === 'object' ? JSON.stringify(v) : String(v));

/** Each failed noderole: id, node, role, and the last 20 lines of its run log. */
export function failureReport(errors: FailedNodeRole[], failed: number): string {
  let out = `${failed} noderole${failed === 1 ? '' : 's'} failed:\n`;
  for (const e of errors) {
    out += `noderole ${e.id}: node ${name(e.node ?? e.node_id)}, role ${name(e.role ?? e.role_id)}` +
      `${e.deployment !== undefined ? `, deployment ${name(e.deployment)}` : ''}${e.state ? ` (${e.state})` : ''}\n`;
    const log = lastLines(e.runlog ?? '', 20);
    out += log.length ? log.map((l) => `  | ${l}`).join('\n') + '\n' : '  (empty run log)\n';
  }
  if (errors.length < failed) out += `... and ${failed - errors.length} more (fulcrum noderoles list --filter state=ERROR)\n`;
  if (errors.length) out += `retry one with: fulcrum retry ${errors[0].id}\n`;
  return out;
}

export interface ConvergeOptions {
  deployment?: string;
  /** Seconds; 0 waits for ever. */
  timeout: number;
  format: Format;
  intervalMs?: number;
  out: (s: string) => void;
  err: (s: string) => void;
  tty: boolean;
  /** Terminal width: the redrawn line must not wrap. */
  columns?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll the annealer summary until a verdict or the timeout; returns the exit code. */
export async function converge(client: Client, opts: ConvergeOptions): Promise<number> {
  const query = opts.deployment ? { deployment: opts.deployment } : {};
  if (opts.deployment) await client.get(`/api/v1/deployments/${encodeURIComponent(opts.deployment)}`);
  const start = Date.now();
  const scope = opts.deployment ? `deployment ${opts.deployment}` : 'all deployments';
  let lastKey = '';
  let drawn = false;
  let unreachable = false;
  let s: AnnealSummary | undefined;
  const clearLine = () => { if (drawn) { opts.err('\r\x1b[K'); drawn = false; } };

  for (;;) {
    const elapsed = Date.now() - start;
    try {
      const left = opts.timeout > 0 ? opts.timeout * 1000 - elapsed : Infinity;
      s = (await client.get<AnnealSummary>('/api/v1/anneal', query, AbortSignal.timeout(Math.max(1000, Math.min(10_000, left))))).body;
      if (unreachable) { clearLine(); opts.err('the server answers again\n'); unreachable = false; }
    } catch (e) {
      // A restarting server is part of life (DESIGN.md §8): keep waiting until the timeout.
      if (e instanceof ApiError || !(e instanceof CliError)) throw e;
      if (!unreachable) { clearLine(); opts.err(`${e.message}; still trying\n`); unreachable = true; }
    }
    if (s) {
      const key = countsKey(s);
      if (opts.tty) { opts.err(`\r${progressLine(s, elapsed).slice(0, Math.max(20, (opts.columns ?? 80) - 1))}\x1b[K`); drawn = true; }
      else if (key !== lastKey) opts.err(progressLine(s, elapsed) + '\n');
      lastKey = key;
      const verdict = convergeVerdict(s, elapsed);
      if (verdict !== 'waiting') {
        clearLine();
        if (opts.format !== 'table') opts.out(opts.format === 'json' ? JSON.stringify(s, null, 2) + '\n' : YAML.stringify(s));
        if (verdict === 'failed') {
          opts.err(failureReport(s.errors ?? [], s.failed));
          return EXIT.failed;
        }
        if (opts.format === 'table') {
          opts.out(s.total === 0
            ? `nothing to converge in ${scope}: no noderoles\n`
            : `converged ${scope}: ${s.finished}/${s.total} noderoles finished in ${((Date.now() - start) / 1000).toFixed(1)}s\n`);
        }
        if (s.proposed > 0) opts.err(`note: ${s.proposed} noderoles are PROPOSED and will not run until their deployment is committed (fulcrum commit DEPLOYMENT)\n`);
        return EXIT.converged;
      }
    }
    if (opts.timeout > 0 && Date.now() - start >= opts.timeout * 1000) {
      clearLine();
      let msg = `timed out after ${opts.timeout}s waiting for ${scope} to converge`;
      if (s) msg += `: ${progressLine(s, Date.now() - start).replace(/^\S+ /, '')}`;
      opts.err(msg + '\n');
      for (const j of s?.running ?? []) opts.err(`  running: job ${name(j.id)} node ${name(j.node ?? j.node_id)} role ${name(j.role ?? j.role_id)}\n`);
      if (s && opts.format !== 'table') opts.out(opts.format === 'json' ? JSON.stringify(s, null, 2) + '\n' : YAML.stringify(s));
      return EXIT.timeout;
    }
    await sleep(opts.intervalMs ?? 500);
  }
}
