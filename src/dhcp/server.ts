// The DHCPv4 server (DESIGN.md §3, RFC 2131): one instance per served address. Node cannot tell
// which interface a broadcast arrived on, so a server process serves one directly attached
// segment (its boot address) plus any number of relayed subnets (giaddr / option 82).
// Sockets: 0.0.0.0:67 receives broadcasts; <address>:67 sends, so replies carry our address, and
// receives what is unicast to us; 0.0.0.0:4011 answers proxyDHCP boot requests; 0.0.0.0:68 watches for other servers.
import dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import type { Store } from '../store/db.js';
import { emit } from '../events/outbox.js';
import { render } from '../provisioning/bootenvs.js';
import { dhcpDrops, dhcpTraffic, watchLeaseWrites } from '../metrics.js';
import { bootInfo, type BootInfo } from './netboot.js';
import { inCidr, netmask, type Client, type Subnet } from './leases.js';
import { LeaseEngine } from './lease-engine.js';
import { literalLookup } from '../udp.js';
import {
  decode, encode, DhcpDecodeError, getOption, setOption, setOptionByName, encodePxeVendorOptions, maxMessageSize, type DhcpPacket,
} from './packet.js';

export interface DhcpServerOptions {
  store: Store;
  /** This server's address on the served segment: server identifier and next-server. */
  address: string;
  /** http://<address>:<port>/boot */
  httpBase: string;
  log?: (m: string) => void;
  /** ICMP echo before offering a new address: true when something answers. */
  probe?: (ip: string, timeoutMs: number) => Promise<boolean>;
  ports?: { server: number; client: number; proxy: number };
}

const TYPES = ['', 'DISCOVER', 'OFFER', 'REQUEST', 'DECLINE', 'ACK', 'NAK', 'RELEASE', 'INFORM'] as const;
const ZERO = '0.0.0.0';
const RECV_BUFFER = 4 * 1024 * 1024;

/** `ping -c1` under a deadline: true when the address answers. */
export function pingProbe(ip: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('ping', ['-n', '-q', '-c', '1', '-W', String(Math.max(1, Math.ceil(timeoutMs / 1000))), ip], { timeout: timeoutMs + 500 }, (err) => resolve(!err));
  });
}

type Reply = { packet: DhcpPacket; to: string; port: number; type: string };

export class DhcpServer {
  private sockets: dgram.Socket[] = [];
  private send?: dgram.Socket;
  private readonly ports: { server: number; client: number; proxy: number };
  private readonly seenRogues = new Map<string, number>();
  /** Subnets, reservations, known MACs and the owned subnets' leases, in memory (lease-engine.ts). */
  readonly engine: LeaseEngine;

  constructor(private readonly opts: DhcpServerOptions) {
    this.ports = opts.ports ?? { server: 67, client: 68, proxy: 4011 };
    this.engine = new LeaseEngine(opts.store, opts.log);
    watchLeaseWrites(() => this.engine.writer);
  }

  async start(): Promise<void> {
    await this.engine.ready();
    const bind = (port: number, address: string, onMessage?: (b: Buffer, r: dgram.RemoteInfo) => void) =>
      new Promise<dgram.Socket>((resolve, reject) => {
        // A boot storm arrives in bursts: a larger receive buffer (the kernel caps it at
        // net.core.rmem_max) rides them out instead of dropping DISCOVERs.
        // Replies go to IP literals only (giaddr, ciaddr, broadcast, the sender).
        const s = dgram.createSocket({ type: 'udp4', reuseAddr: true, recvBufferSize: RECV_BUFFER, lookup: literalLookup });
        s.once('error', reject);
        if (onMessage) s.on('message', onMessage);
        s.bind(port, address, () => { s.setBroadcast(true); s.removeListener('error', reject); s.on('error', (e) => this.opts.log?.(`dhcp socket: ${e.message}`)); resolve(s); });
      });
    // Unicast to our address (RELEASE, RENEWING) is delivered to this socket, not the wildcard one.
    this.send = await bind(this.ports.server, this.opts.address, (b, r) => void this.receive(b, r, 'dhcp'));
    this.sockets.push(this.send);
    this.sockets.push(await bind(this.ports.server, ZERO, (b, r) => void this.receive(b, r, 'dhcp')));
    this.sockets.push(await bind(this.ports.proxy, ZERO, (b, r) => void this.receive(b, r, 'proxy')));
    this.sockets.push(await bind(this.ports.client, ZERO, (b) => void this.watch(b)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.sockets = [];
    await this.engine.stop();
  }

  private async receive(buf: Buffer, rinfo: dgram.RemoteInfo, via: 'dhcp' | 'proxy'): Promise<void> {
    const started = performance.now();
    let req: DhcpPacket;
    try {
      req = decode(buf);
    } catch (err) {
      dhcpDrops.inc({ reason: err instanceof DhcpDecodeError ? 'malformed' : 'decode-crash' });
      return;
    }
    if (req.op !== 1) { dhcpDrops.inc({ reason: 'not-a-request' }); return; }
    const code = Number(getOption(req, 'message-type'));
    const type = TYPES[code] ?? '';
    if (!type) { dhcpDrops.inc({ reason: 'no-message-type' }); return; }
    dhcpTraffic.received(code);
    try {
      const reply = await this.handle(req, type, rinfo, via);
      if (!reply) return;
      const out = encode(reply.packet, { maxSize: maxMessageSize(req) });
      this.send!.send(out, reply.port, reply.to, this.sent);
      dhcpTraffic.replied(code, TYPES.indexOf(reply.type as typeof TYPES[number]), (performance.now() - started) / 1000);
    } catch (err) {
      dhcpDrops.inc({ reason: 'error' });
      this.opts.log?.(`dhcp: ${type} from ${req.chaddr}: ${(err as Error).message}`);
    }
  }

  /** A send's outcome: the reply was counted when it was handed to the socket; a failure is counted here. */
  private readonly sent = (err: Error | null): void => {
    if (!err) return;
    dhcpDrops.inc({ reason: 'send-failed' });
    this.opts.log?.(`dhcp: sending a reply failed: ${err.message}`);
  };

  /** Subnet selection: option 82 link selection, option 118, giaddr; else our own segment. */
  private subnetFor(req: DhcpPacket): Subnet | null {
    const sel = getOption(req, 'relay-agent-information')?.linkSelection ?? getOption(req, 'subnet-selection');
    if (sel) return this.engine.subnetContaining(sel);
    if (req.giaddr !== ZERO) return this.engine.subnetContaining(req.giaddr);
    return this.engine.subnetContaining(this.opts.address);
  }

  async handle(req: DhcpPacket, type: string, rinfo: dgram.RemoteInfo, via: 'dhcp' | 'proxy'): Promise<Reply | null> {
    if (!this.engine.isReady) await this.engine.ready();
    const subnet = this.subnetFor(req);
    const mac = req.chaddr.toLowerCase();
    const clientId = getOption(req, 'client-identifier');
    const client: Client = { mac, clientId: clientId ? `${clientId.type}:${clientId.data.toString('hex')}` : undefined, hostname: getOption(req, 'hostname') };
    const node = this.engine.node(mac);
    const boot = bootInfo({
      mac, vendorClass: getOption(req, 'vendor-class'), userClass: getOption(req, 'user-class'),
      ipxeOptions: getOption(req, 'ipxe-encapsulated') !== undefined, arch: getOption(req, 'client-arch'),
    }, { knownNodeNetboots: node ? node.netboot !== false : null, httpBase: this.opts.httpBase, nextServer: this.opts.address });

    // proxyDHCP (port 4011, or a proxy subnet): boot information only, never an address.
    if (via === 'proxy' || subnet?.proxy) {
      if (!boot) { dhcpDrops.inc({ reason: 'proxy-not-pxe' }); return null; }
      const answer = via === 'proxy' ? (type === 'REQUEST' || type === 'INFORM' ? 'ACK' : null) : type === 'DISCOVER' ? 'OFFER' : null;
      if (!answer) { dhcpDrops.inc({ reason: 'proxy-ignored' }); return null; }
      const p = await this.build(req, answer, ZERO, subnet, boot, null, { proxy: true });
      // On 4011 the client has an address already: answer it directly.
      return via === 'proxy' ? { packet: p, to: rinfo.address, port: rinfo.port, type: answer } : this.route(req, p, answer);
    }
    if (!subnet) { dhcpDrops.inc({ reason: 'no-subnet' }); return null; }

    const requested = getOption(req, 'requested-ip');
    const serverId = getOption(req, 'server-identifier');
    const reservation = this.engine.reservation(mac);
    const reserved = reservation && reservation.subnet_id === subnet.id ? reservation : null;
    switch (type) {
      case 'DISCOVER': {
        // Chosen and held (offer_hold_s, in memory) in one step: no other client is offered it meanwhile.
        const address = await this.engine.offer(subnet, client, requested,
          this.opts.probe ? (ip) => this.opts.probe!(ip, subnet.probe_timeout_ms) : undefined);
        if (address === undefined) { dhcpDrops.inc({ reason: 'subnet-served-elsewhere' }); return null; }
        if (!address) {
          dhcpDrops.inc({ reason: 'pool-exhausted' });
          await this.engine.exhausted(subnet, mac);
          return null;
        }
        return this.route(req, await this.build(req, 'OFFER', address, subnet, boot, reserved), 'OFFER');
      }
      case 'REQUEST': {
        if (serverId !== undefined && serverId !== this.opts.address) {
          // The client took another server's offer (RFC 2131 §4.3.2): let our hold lapse.
          dhcpDrops.inc({ reason: 'other-server' });
          this.engine.dropOffer(subnet, mac);
          return null;
        }
        const address = requested ?? (req.ciaddr !== ZERO ? req.ciaddr : undefined);
        const state = serverId !== undefined ? 'SELECTING' : requested ? 'INIT-REBOOT' : 'RENEWING';
        if (!address || !inCidr(subnet.cidr, address)) {
          return this.route(req, await this.build(req, 'NAK', ZERO, subnet, null, null, { message: `${address ?? 'no address'} is not on subnet ${subnet.cidr}` }), 'NAK');
        }
        // Committed (group commit, lease-engine.ts) before the ACK is sent.
        const bound = await this.engine.bind(subnet, client, address, reserved?.address === address);
        if (bound === undefined) { dhcpDrops.inc({ reason: 'subnet-served-elsewhere' }); return null; }
        if (bound === 'backlog') { dhcpDrops.inc({ reason: 'lease-write-backlog' }); return null; }
        if (bound === 'unknown') {
          // INIT-REBOOT / RENEWING for an address we have no record of: stay silent (§4.3.2).
          if (state !== 'SELECTING') { dhcpDrops.inc({ reason: 'unknown-lease' }); return null; }
          return this.route(req, await this.build(req, 'NAK', ZERO, subnet, null, null, { message: 'no offer for this address' }), 'NAK');
        }
        if (bound === 'taken') {
          return this.route(req, await this.build(req, 'NAK', ZERO, subnet, null, null, { message: `${address} is in use` }), 'NAK');
        }
        return this.route(req, await this.build(req, 'ACK', address, subnet, boot, reserved), 'ACK');
      }
      case 'DECLINE': {
        const of = requested && this.engine.subnetContaining(requested);
        if (of && !of.proxy) await this.engine.end(of, mac, requested, 'declined');
        return null;
      }
      case 'RELEASE': {
        const of = req.ciaddr !== ZERO && this.engine.subnetContaining(req.ciaddr);
        if (of && !of.proxy) await this.engine.end(of, mac, req.ciaddr, 'released');
        return null;
      }
      case 'INFORM': {
        const p = await this.build(req, 'ACK', ZERO, subnet, boot, reserved, { inform: true });
        return { packet: p, to: req.ciaddr !== ZERO ? req.ciaddr : rinfo.address, port: this.ports.client, type: 'ACK' };
      }
      default:
        dhcpDrops.inc({ reason: `unexpected-${type.toLowerCase()}` });
        return null;
    }
  }

  /** RFC 2131 §4.1: relay, else unicast to a configured client, else broadcast. */
  private route(req: DhcpPacket, packet: DhcpPacket, type: string): Reply {
    if (req.giaddr !== ZERO) return { packet, to: req.giaddr, port: this.ports.server, type };
    if (type !== 'NAK' && req.ciaddr !== ZERO) return { packet, to: req.ciaddr, port: this.ports.client, type };
    // Unicast to yiaddr needs an ARP entry we cannot set from Node: broadcast (clients accept it).
    return { packet, to: '255.255.255.255', port: this.ports.client, type };
  }

  private async build(req: DhcpPacket, type: string, yiaddr: string, subnet: Subnet | null, boot: BootInfo | null,
    reserved: { hostname: string | null; options: Record<string, unknown> } | null,
    how: { proxy?: boolean; inform?: boolean; message?: string } = {}): Promise<DhcpPacket> {
    const p: DhcpPacket = {
      op: 2, htype: req.htype, hlen: req.hlen, hops: 0, xid: req.xid, secs: 0, flags: req.flags,
      ciaddr: how.inform || type === 'ACK' ? req.ciaddr : ZERO, yiaddr, siaddr: boot?.nextServer ?? ZERO, giaddr: req.giaddr,
      chaddr: req.chaddr, sname: '', file: boot && type !== 'NAK' ? boot.file : '', options: new Map(),
    };
    setOption(p, 'message-type', TYPES.indexOf(type as any));
    setOption(p, 'server-identifier', this.opts.address);
    if (type === 'NAK') {
      if (how.message) setOption(p, 'message', how.message);
    } else {
      if (subnet && !how.proxy) {
        if (!how.inform) {
          setOption(p, 'lease-time', subnet.lease_time_s);
          setOption(p, 'renewal-time', Math.floor(subnet.lease_time_s / 2));
          setOption(p, 'rebinding-time', Math.floor(subnet.lease_time_s * 7 / 8));
        }
        setOption(p, 'subnet-mask', netmask(subnet.cidr));
        if (subnet.routers.length) setOption(p, 'routers', subnet.routers);
        if (subnet.dns.length) setOption(p, 'dns-servers', subnet.dns);
        if (subnet.ntp.length) setOption(p, 'ntp-servers', subnet.ntp);
        if (subnet.domain) setOption(p, 'domain-name', subnet.domain);
        // Template values are rendered from the request; the reservation's options win over the subnet's.
        const context = () => ({
          request: { mac: req.chaddr, hostname: getOption(req, 'hostname') ?? null, vendor_class: getOption(req, 'vendor-class') ?? null, giaddr: req.giaddr },
          subnet: { name: subnet.name, cidr: subnet.cidr }, address: yiaddr,
        });
        for (const options of [subnet.options, reserved?.options]) {
          if (!options) continue;
          for (const name in options) {
            if (options === subnet.options && reserved?.options && Object.hasOwn(reserved.options, name)) continue;
            const value = options[name];
            setOptionByName(p, name, typeof value === 'string' && value.includes('{') ? await render(value, context()) : value);
          }
        }
        // The reservation's own hostname is the most specific answer.
        if (reserved?.hostname) setOption(p, 'hostname', reserved.hostname);
      }
      if (boot) {
        setOption(p, 'vendor-class', boot.vendorClass);
        if (boot.skipDiscovery) setOption(p, 'vendor-specific', encodePxeVendorOptions({ discoveryControl: 8 }));
        setOption(p, 'bootfile-name', boot.file);
        setOption(p, 'tftp-server-name', boot.nextServer);
        // Some PXE firmware ignores replies that do not echo its machine UUID (option 97).
        const guid = getOption(req, 'uuid-guid');
        if (guid) setOption(p, 'uuid-guid', guid);
      }
    }
    // RFC 3046 §2.2: the relay agent information comes back unchanged.
    const agent = req.options.get(82);
    if (agent !== undefined) p.options.set(82, agent);
    return p;
  }

  /** Another server's OFFER on our segment: warn once a minute per server. */
  private async watch(buf: Buffer): Promise<void> {
    let p: DhcpPacket;
    try { p = decode(buf); } catch { return; }
    if (p.op !== 2 || TYPES[Number(getOption(p, 'message-type'))] !== 'OFFER') return;
    const server = getOption(p, 'server-identifier') ?? p.siaddr;
    if (server === this.opts.address) return;
    const last = this.seenRogues.get(server) ?? 0;
    if (Date.now() - last < 60_000) return;
    this.seenRogues.set(server, Date.now());
    this.opts.log?.(`warning: another DHCP server (${server}) is answering on the segment of ${this.opts.address}`);
    await this.opts.store.tx((tx) => emit(tx, { type: 'dhcp.other-server', object_kind: 'dhcp', payload: { server, offered: p.yiaddr, to: p.chaddr, level: 'warning' } }));
  }
}
