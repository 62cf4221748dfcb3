// Role hooks (DESIGN.md §2 "Hooks and events"): TypeScript code registered by role name, called
// after commit for every matching event — including each noderole a ripple BLOCKED. Delivered by
// the leader from a durable cursor, so each event reaches the hooks once per leader, and again
// only if the leader died before it recorded its progress (at-least-once).
import type { Store } from '../store/db.js';
import type { Event } from './outbox.js';

export const HOOKS = [
  'on_node_create', 'on_node_change', 'on_node_delete', 'on_proposed', 'on_todo', 'on_transition',
  'on_active', 'on_error', 'on_blocked', 'on_commit', 'on_milestone', 'on_deployment_create', 'on_deployment_delete',
] as const;
export type HookName = (typeof HOOKS)[number];
export type Hook = (event: Event, store: Store) => Promise<void> | void;
export type RoleHooks = Partial<Record<HookName, Hook>>;

const registry = new Map<string, RoleHooks>();

export function registerRoleHooks(role: string, hooks: RoleHooks): () => void {
  registry.set(role, { ...registry.get(role), ...hooks });
  return () => registry.delete(role);
}

/** Which hook an event fires, and for which roles (null: every role with that hook). */
export function hookFor(e: Event, milestone: (role: string) => boolean): Array<{ hook: HookName; role: string | null }> {
  switch (e.type) {
    case 'noderole.state': {
      const role = e.payload.role as string;
      const out: Array<{ hook: HookName; role: string | null }> = [{ hook: `on_${String(e.payload.to).toLowerCase()}` as HookName, role }];
      if (e.payload.to === 'ACTIVE' && milestone(role)) out.push({ hook: 'on_milestone', role });
      return out;
    }
    case 'node.created': return [{ hook: 'on_node_create', role: null }];
    case 'node.updated': case 'node.alive': case 'node.available': case 'node.bootenv': return [{ hook: 'on_node_change', role: null }];
    case 'node.deleted': return [{ hook: 'on_node_delete', role: null }];
    case 'deployment.created': return [{ hook: 'on_deployment_create', role: null }];
    case 'deployment.deleted': return [{ hook: 'on_deployment_delete', role: null }];
    case 'deployment.committed': return [{ hook: 'on_commit', role: null }];
    default: return [];
  }
}

export async function dispatchHooks(store: Store, events: Event[], log: (m: string) => void): Promise<void> {
  if (registry.size === 0) return;
  const milestones = new Set((await store.query(`SELECT name FROM roles WHERE 'milestone' = ANY(flags)`)).rows.map((r) => r.name));
  for (const e of events) {
    for (const { hook, role } of hookFor(e, (r) => milestones.has(r))) {
      const targets = role === null ? [...registry.entries()] : registry.has(role) ? [[role, registry.get(role)!] as const] : [];
      for (const [name, hooks] of targets) {
        const fn = hooks[hook];
        if (!fn) continue;
        try {
          await fn(e, store);
        } catch (err) {
          // A failing hook must not stop delivery to the others; it is logged with its role.
          log(`hook ${hook} of role ${name} failed on event ${e.id}: ${(err as Error).message}`);
        }
      }
    }
  }
}
