// What `fulcrum server` starts for the service registry and the cluster workloads: the server-jig
// code of `core-services` (the resolver) and of the peers roles of cluster workloads (etcd), the
// rule that keeps those peers lists current, and this replica's own services in the registry.
import type { Store } from '../store/db.js';
import type { EventStream } from '../events/stream.js';
import { registerServerRole } from '../annealer/jigs.js';
import { RESOLVER_ROLE, pokeResolvers, registerInternalServices, resolverRole, type InternalService } from './registry.js';
import { clusterPeersRole, watchClusterPeers, type ClusterPeersSpec } from './cluster-peers.js';

const RECHECK_MS = 30_000;

/** Cluster workloads shipped with Fulcrum whose members need their peers (content/etcd). */
export const CLUSTERS: ClusterPeersSpec[] = [{ peersRole: 'etcd-peers', clusterRole: 'etcd', attrib: 'etcd-peers' }];

export interface ServiceOptions {
  store: Store; events: EventStream; replicaId: string; isLeader: () => boolean; log: (m: string) => void;
  /** The API's address as nodes reach it, when it listens on TCP (not a unix socket or loopback). */
  api?: { address: string; url: string };
  /** The provisioning plane's boot address, HTTP base and whether DHCP runs. */
  boot?: { address: string; httpBase: string; dhcp: boolean; tftpPort: number };
}

/** This replica's own services, from how it was started. */
export function internalServices(o: Pick<ServiceOptions, 'api' | 'boot'>): InternalService[] {
  const out: InternalService[] = [];
  if (o.boot) {
    // Nodes reach the API (and their agent's endpoints) on the boot address.
    out.push({ name: 'api', addresses: [o.boot.address], url: o.boot.httpBase, description: 'Fulcrum API on the boot address' });
    out.push({ name: 'provisioner', addresses: [o.boot.address], port: o.boot.tftpPort, url: `${o.boot.httpBase}/boot`, description: 'boot files over TFTP and HTTP' });
    if (o.boot.dhcp) out.push({ name: 'dhcp', addresses: [o.boot.address], port: 67, description: 'Fulcrum DHCPv4' });
  } else if (o.api) {
    out.push({ name: 'api', addresses: [o.api.address], url: o.api.url, description: 'Fulcrum API' });
  }
  return out;
}

/** The DNS server this replica serves (`--dns-listen HOST:PORT`), as nodes reach it: a wildcard host means the boot address. */
export function internalDns(listen: string, bootAddress?: string): InternalService | null {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(listen);
  if (!m) return null;
  const wildcard = m[1] === '' || m[1] === '0.0.0.0' || m[1] === '::';
  const host = wildcard ? bootAddress : m[1];
  if (!host || /^(127\.|::1$|localhost$)/.test(host)) return null;
  return { name: 'dns', addresses: [host], port: Number(m[2]), description: 'Fulcrum DNS' };
}

export async function startServices(o: ServiceOptions): Promise<{ stop(): void; register(extra: InternalService[]): Promise<void> }> {
  registerServerRole(RESOLVER_ROLE, resolverRole(o.store));
  for (const c of CLUSTERS) registerServerRole(c.peersRole, clusterPeersRole(o.store, c));
  const unwatch = watchClusterPeers(o.store, o.events, o.isLeader, CLUSTERS, o.log);
  const own = internalServices(o);
  await registerInternalServices(o.store, o.replicaId, own);
  // A replica removed as dead takes its rows along (ON DELETE CASCADE) without telling anyone:
  // the leader compares the resolvers' answers with the registry now and then.
  const check = setInterval(() => {
    if (!o.isLeader()) return;
    o.store.tx((tx) => pokeResolvers(tx, 'the service registry changed (a server replica went away)'))
      .catch((err) => o.log(`service registry check: ${(err as Error).message}`));
  }, RECHECK_MS);
  return {
    stop: () => { clearInterval(check); unwatch(); },
    /** For services started later in the process (DNS, NTP): registered beside the others. */
    register: (extra) => {
      for (const e of extra) own.splice(0, own.length, ...own.filter((x) => x.name !== e.name), e);
      return registerInternalServices(o.store, o.replicaId, own);
    },
  };
}
