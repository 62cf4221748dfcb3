// The annealer: converges the noderole graph (DESIGN.md §2, rules 1-10). Every replica runs one.
// Scheduling decisions are serialised across replicas by a transaction-scoped advisory lock; the
// unique index on running jobs per node is the last line of defence for rule 2. Wake-ups come
// from NOTIFY (sent on commit of any change); a slow sweep handles time: timeouts, retries,
// replicas that died.
import os from 'node:os';
import type pg from 'pg';
import type { Store, Tx } from '../store/db.js';
import { CHANNEL, emit } from '../events/outbox.js';
import { changeState, changeStates } from '../model/noderoles.js';
import { pokeIfActive } from '../model/deployments.js';
import { getPath, merge, sameValue, type Data } from '../model/data.js';
import { buildRunInput, type RunInput } from './run-input.js';
import { jigFor, type JigResult } from './jigs.js';
import { selectRunnable, retryDelaySeconds, type Candidate } from './select.js';

const SCHEDULE_LOCK = 7780_0002;
const LEADER_LOCK = 7780_0003;

export interface AnnealerOptions {
  /** Global cap on running jobs (rule 3); stored in settings `annealer.cap`, default 10. */
  cap?: number;
  /** Stall a node that has any noderole in ERROR (the original's behaviour). Default true. */
  stallOnError?: boolean;
  sweepMs?: number;
  /** A replica whose heartbeat is older than this is dead; its in-process runs are dealt with. */
  deadAfterMs?: number;
  log?: (msg: string) => void;
}

export class Annealer {
  private listener?: pg.PoolClient;
  private timers: NodeJS.Timeout[] = [];
  private passing = false;
  private again = false;
  private stopped = false;
  private leader = false;
  private readonly inFlight = new Map<number, AbortController>();
  private readonly opts: Required<AnnealerOptions>;
  /** Called after each pass with nothing left to do; tests and the sim use it. */
  onIdle?: () => void;

  constructor(private readonly store: Store, readonly replicaId: string, opts: AnnealerOptions = {}) {
    this.opts = { cap: 10, stallOnError: true, sweepMs: 2000, deadAfterMs: 15000, log: () => {}, ...opts };
  }

  get isLeader(): boolean { return this.leader; }

  async start(): Promise<void> {
    await this.store.tx(async (tx) => {
      await tx.query(
        `INSERT INTO replicas (id, hostname, pid) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET hostname = $2, pid = $3, started_at = now(), heartbeat_at = now()`,
        [this.replicaId, os.hostname(), process.pid]);
      await tx.query(`INSERT INTO settings (key, value) VALUES ('annealer.cap', $1) ON CONFLICT DO NOTHING`, [JSON.stringify(this.opts.cap)]);
    });
    // Runs this replica owned before it restarted died with the old process.
    await this.recoverRunsOf(this.replicaId, 'this server restarted');
    await this.listen();
    this.timers.push(setInterval(() => void this.sweep().catch((e) => this.opts.log(`sweep: ${e.message}`)), this.opts.sweepMs));
    this.kick();
  }

  /**
   * LISTEN on a dedicated connection. If it drops (database restart), leadership (a session lock
   * on it) is gone too: reconnect, and let the sweep take the lock again if it is free.
   */
  private async listen(): Promise<void> {
    const client = await this.store.pool.connect();
    client.on('notification', () => this.kick());
    client.on('error', (err) => {
      // After stop() the client is back in the pool: not ours to release again.
      if (this.stopped || this.listener !== client) return;
      this.opts.log(`annealer listener lost: ${err.message}; reconnecting`);
      this.leader = false;
      this.listener = undefined;
      client.release(err);
      const retry = () => { if (!this.stopped) this.listen().then(() => this.kick(), () => setTimeout(retry, 1000)); };
      setTimeout(retry, 500);
    });
    await client.query(`LISTEN ${CHANNEL}`);
    this.listener = client;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const c of this.inFlight.values()) c.abort();
    while (this.passing) await new Promise((r) => setTimeout(r, 10));
    // A clean stop hands its in-process runs back at once instead of waiting to be declared dead.
    await this.recoverRunsOf(this.replicaId, 'server stopped').catch((e) => this.opts.log(`handing back runs: ${e.message}`));
    const l = this.listener;
    this.listener = undefined;
    if (l) {
      await l.query(`UNLISTEN ${CHANNEL}`).catch(() => undefined);
      if (this.leader) await l.query('SELECT pg_advisory_unlock($1)', [LEADER_LOCK]).catch(() => undefined);
      l.release();
    }
  }

  /** Ask for a scheduling pass; passes never overlap, and a kick during one causes another. */
  kick(): void {
    if (this.stopped) return;
    if (this.passing) { this.again = true; return; }
    this.passing = true;
    void (async () => {
      try {
        do {
          this.again = false;
          while (!this.stopped && (await this.scheduleOnce()) > 0) { /* keep filling free slots */ }
        } while (this.again && !this.stopped);
      } catch (err) {
        this.opts.log(`annealer pass failed: ${(err as Error).message}`);
        setTimeout(() => this.kick(), 500);
      } finally {
        this.passing = false;
        if (!this.stopped) this.onIdle?.();
      }
    })();
  }

  /** One scheduling transaction: pick runnable noderoles and start them. Returns how many. */
  private async scheduleOnce(): Promise<number> {
    const started: Array<{ job: number; input: RunInput }> = [];
    const count = await this.store.tx(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [SCHEDULE_LOCK]);
      const cap = Number((await tx.query(`SELECT value FROM settings WHERE key = 'annealer.cap'`)).rows[0]?.value ?? this.opts.cap);
      const busy = (await tx.query(`SELECT node_id FROM jobs WHERE state = 'running'`)).rows.map((r) => r.node_id as number);
      if (busy.length >= cap) return 0;
      // Rule 1, in SQL: TODO, deployment committed, node alive and available, every hard parent
      // ACTIVE, nothing else on the node in TRANSITION (nor, by default, in ERROR).
      // Walks the (cohort, id) index of TODO noderoles and stops after enough rows, so a pass
      // costs what it picks, not the size of the graph; one-per-node is selectRunnable's job.
      const candidates = (await tx.query<Candidate & { destructive: boolean; run_count: number }>(
        `SELECT nr.id, nr.node_id, nr.cohort, nr.run_count, 'destructive' = ANY(ro.flags) AS destructive
           FROM noderoles nr
           JOIN roles ro ON ro.id = nr.role_id
           JOIN deployments d ON d.id = nr.deployment_id AND d.state = 'committed'
           JOIN nodes n ON n.id = nr.node_id AND n.alive AND n.available
          WHERE nr.state = 'TODO'
            AND NOT EXISTS (SELECT 1 FROM noderole_edges e JOIN noderoles p ON p.id = e.parent_id
                             WHERE e.child_id = nr.id AND e.kind = 'hard' AND p.state <> 'ACTIVE')
            AND NOT EXISTS (SELECT 1 FROM noderoles o WHERE o.node_id = nr.node_id
                             AND (o.state = 'TRANSITION' OR ($1 AND o.state = 'ERROR')))
          ORDER BY nr.cohort, nr.id LIMIT $2`,
        [this.opts.stallOnError, (cap - busy.length) * 8])).rows;
      const picked = selectRunnable(candidates, { cap, running: busy.length, busyNodes: new Set(busy) });
      const starting: Array<{ id: number; input: RunInput }> = [];
      for (const c of picked) {
        const cand = candidates.find((x) => x.id === c.id)!;
        if (cand.destructive && cand.run_count > 0) {
          // Rule 6: a destructive role runs once; afterwards it is ACTIVE without running.
          await tx.query(
            `INSERT INTO jobs (noderole_id, node_id, deployment_id, role_id, jig, state, message, owner, finished_at, deadline_at)
             SELECT id, node_id, deployment_id, role_id, 'none', 'skipped', 'destructive role already ran ' || run_count || ' time(s)', $2, clock_timestamp(), now()
               FROM noderoles WHERE id = $1`, [c.id, this.replicaId]);
          await changeState(tx, c.id, 'ACTIVE', 'skip', { detail: { skipped: 'destructive role already ran' } });
          continue;
        }
        starting.push({ id: c.id, input: await buildRunInput(tx, c.id) });
      }
      if (starting.length) {
        // One statement for the jobs, one batch of state changes for the noderoles.
        const jobs = await tx.query(
          `INSERT INTO jobs (noderole_id, node_id, deployment_id, role_id, jig, input, owner, deadline_at)
           SELECT nr.id, nr.node_id, nr.deployment_id, nr.role_id, s.jig, s.input, $4, now() + make_interval(secs => s.timeout_s)
             FROM unnest($1::bigint[], $2::text[], $3::jsonb[], $5::int[]) AS s(id, jig, input, timeout_s) JOIN noderoles nr ON nr.id = s.id
           RETURNING id, noderole_id`,
          [starting.map((s) => s.id), starting.map((s) => s.input.role.jig), starting.map((s) => JSON.stringify(s.input)), this.replicaId, starting.map((s) => s.input.role.timeout_s)]);
        const jobOf = new Map(jobs.rows.map((j) => [j.noderole_id as number, j.id as number]));
        await changeStates(tx, starting.map((s) => ({ id: s.id, to: 'TRANSITION' as const, cause: 'start' as const, opts: { detail: { job: jobOf.get(s.id) } } })));
        for (const s of starting) started.push({ job: jobOf.get(s.id)!, input: s.input });
      }
      return picked.length;
    });
    for (const s of started) void this.execute(s.job, s.input);
    return count;
  }

  private async execute(jobId: number, input: RunInput): Promise<void> {
    const job = { jig: input.role.jig, input };
    const jig = jigFor(job.jig);
    const abort = new AbortController();
    this.inFlight.set(jobId, abort);
    let result: JigResult;
    try {
      result = jig ? await jig.run({ job: jobId, input: job.input, signal: abort.signal })
        : { status: 'failed', message: `role ${job.input.role.name} uses jig "${job.jig}", which this server does not provide` };
    } catch (err) {
      if (abort.signal.aborted) { this.inFlight.delete(jobId); return; }
      result = { status: 'failed', message: `jig ${job.jig} crashed: ${(err as Error).message}` };
    }
    this.inFlight.delete(jobId);
    if (this.stopped) return;
    if (result.status === 'async') {
      if (result.log) await this.store.query(`UPDATE jobs SET async = true, log = log || $2 WHERE id = $1`, [jobId, result.log]);
      else await this.store.query(`UPDATE jobs SET async = true WHERE id = $1`, [jobId]);
      return;
    }
    await this.store.tx((tx) => finishJob(tx, jobId, result)).catch((e) => this.opts.log(`finishing job ${jobId}: ${e.message}`));
  }

  /** Leader-only housekeeping plus this replica's heartbeat. */
  private async sweep(): Promise<void> {
    if (this.stopped || !this.listener) return;
    await this.store.query('UPDATE replicas SET heartbeat_at = now() WHERE id = $1', [this.replicaId]);
    // The slow safety net under the event-driven wake-ups (rule 8).
    this.kick();
    if (!this.leader) {
      this.leader = (await this.listener.query('SELECT pg_try_advisory_lock($1) AS ok', [LEADER_LOCK])).rows[0].ok;
      if (this.leader) this.opts.log(`replica ${this.replicaId} is the leader`);
    }
    if (!this.leader) return;
    // Every TRANSITION has a timeout (rule 9).
    const late = await this.store.query(
      `SELECT j.id, r.name AS role, n.name AS node, r.timeout_s FROM jobs j JOIN roles r ON r.id = j.role_id JOIN nodes n ON n.id = j.node_id
        WHERE j.state = 'running' AND j.deadline_at < now()`);
    for (const j of late.rows) {
      const message = `timed out after ${j.timeout_s} s in TRANSITION (role ${j.role} on node ${j.node}): the jig never reported back; check the node, then retry`;
      await this.store.tx((tx) => finishJob(tx, j.id, { status: 'failed', message }));
    }
    // Automatic retry with backoff (rule 10).
    const due = await this.store.query(`SELECT id FROM noderoles WHERE state = 'ERROR' AND retry_at <= now() ORDER BY cohort, id`);
    for (const nr of due.rows) {
      await this.store.tx(async (tx) => {
        const r = await tx.query(`UPDATE noderoles SET retry_at = NULL WHERE id = $1 AND state = 'ERROR' AND retry_at <= now() RETURNING id`, [nr.id]);
        if (r.rowCount) await changeState(tx, nr.id, 'ready', 'retry', { detail: { automatic: true } });
      });
    }
    const dead = await this.store.query(
      `SELECT id FROM replicas WHERE id <> $1 AND heartbeat_at < now() - make_interval(secs => $2)`, [this.replicaId, this.opts.deadAfterMs / 1000]);
    for (const r of dead.rows) {
      await this.recoverRunsOf(r.id, `server replica ${r.id} stopped`);
      await this.store.query('DELETE FROM replicas WHERE id = $1 AND heartbeat_at < now() - make_interval(secs => $2)', [r.id, this.opts.deadAfterMs / 1000]);
    }
  }

  /**
   * Crash rule (rule 9): runs owned by a dead server that happened inside it died with it. They
   * are requeued — except for destructive roles, which go to ERROR so an operator checks the
   * node before anything runs twice. Runs done elsewhere (agents) stay and are re-attached.
   */
  private async recoverRunsOf(owner: string, why: string): Promise<void> {
    const runs = await this.store.query(
      `SELECT j.id, j.jig, j.noderole_id, 'destructive' = ANY(r.flags) AS destructive, r.name AS role
         FROM jobs j JOIN roles r ON r.id = j.role_id WHERE j.state = 'running' AND j.owner = $1`, [owner]);
    for (const run of runs.rows) {
      if (!(jigFor(run.jig)?.inProcess ?? true)) continue;
      await this.store.tx(async (tx) => {
        if (run.destructive) {
          await finishJob(tx, run.id, { status: 'failed', message: `${why} during a run of destructive role ${run.role}; it is not re-run automatically: check the node, then retry` });
          return;
        }
        const r = await tx.query(`UPDATE jobs SET state = 'cancelled', finished_at = clock_timestamp(), message = $2 WHERE id = $1 AND state = 'running' RETURNING id`, [run.id, `${why}; requeued`]);
        if (r.rowCount) await changeState(tx, run.noderole_id, 'ready', 'requeue', { detail: { job: run.id, reason: why } });
      });
    }
  }
}

/**
 * Record the end of a run and move its noderole on. Idempotent: a job that is no longer
 * running (cancelled, timed out, already finished) is left alone and false is returned.
 */
export async function finishJob(tx: Tx, jobId: number, result: Exclude<JigResult, { status: 'async' }>): Promise<boolean> {
  const { rows: [job] } = await tx.query(`SELECT * FROM jobs WHERE id = $1 FOR UPDATE`, [jobId]);
  if (!job || job.state !== 'running') return false;
  const { rows: [nr] } = await tx.query(
    `SELECT nr.*, r.retry_count, r.retry_backoff_s FROM noderoles nr JOIN roles r ON r.id = nr.role_id WHERE nr.id = $1 FOR UPDATE OF nr`, [job.noderole_id]);
  const log = (job.log ?? '') + (result.log ?? '') + (result.status === 'failed' ? `${result.message}\n` : '');
  if (result.status === 'succeeded') {
    const wall = merge(nr.wall, result.wall ?? {});
    await tx.query(`UPDATE jobs SET state = 'succeeded', output = $2, log = $3, finished_at = clock_timestamp() WHERE id = $1`, [jobId, result.wall ?? {}, log]);
    await tx.query(`UPDATE noderoles SET wall = $2, run_count = run_count + 1, failures = 0, retry_at = NULL, runlog = $3 WHERE id = $1`, [nr.id, wall, log]);
    await emit(tx, { type: 'job.finished', object_kind: 'job', object_id: jobId, deployment_id: job.deployment_id, node_id: job.node_id, payload: { noderole: nr.id, status: 'succeeded' } });
    await changeState(tx, nr.id, 'done', 'succeeded', { detail: { job: jobId } });
    await pokeWanters(tx, nr.id, nr.role_id, nr.wall, wall);
  } else {
    const failures = nr.failures + 1;
    const retryIn = failures <= nr.retry_count ? retryDelaySeconds(nr.retry_backoff_s, failures) : null;
    await tx.query(`UPDATE jobs SET state = 'failed', output = $2, log = $3, message = $4, finished_at = clock_timestamp() WHERE id = $1`, [jobId, result.wall ?? null, log, result.message]);
    await tx.query(
      `UPDATE noderoles SET failures = $2, runlog = $3, retry_at = CASE WHEN $4::int IS NULL THEN NULL ELSE now() + make_interval(secs => $4::int) END WHERE id = $1`,
      [nr.id, failures, log, retryIn]);
    await emit(tx, { type: 'job.finished', object_kind: 'job', object_id: jobId, deployment_id: job.deployment_id, node_id: job.node_id, payload: { noderole: nr.id, status: 'failed', message: result.message } });
    await changeState(tx, nr.id, 'ERROR', 'failed', { detail: { job: jobId, message: result.message, retry_in_s: retryIn } });
  }
  return true;
}

/** Poke-on-change: a provider's attrib changed, so every ACTIVE noderole that wants it converges again. */
async function pokeWanters(tx: Tx, noderoleId: number, roleId: number, before: Data, after: Data): Promise<void> {
  const owned = (await tx.query(`SELECT name, map FROM attribs WHERE role_id = $1`, [roleId])).rows;
  const changed = owned.filter((a) => !sameValue(getPath(before, a.map), getPath(after, a.map))).map((a) => a.name);
  if (changed.length === 0) return;
  const wanters = await tx.query(
    `SELECT c.id FROM noderole_edges e JOIN noderoles c ON c.id = e.child_id JOIN roles r ON r.id = c.role_id
      WHERE e.parent_id = $1 AND r.wants_attribs && $2 ORDER BY c.cohort, c.id`, [noderoleId, changed]);
  for (const w of wanters.rows) await pokeIfActive(tx, w.id, { reason: 'wanted attrib changed', attribs: changed, provider: noderoleId });
}
