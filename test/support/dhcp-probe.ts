// A minimal PXE-like DHCP client run INSIDE a lab namespace:
//   node dist/test/support/dhcp-probe.js MAC IFACE SECONDS [proxy]
// It broadcasts one DISCOVER (vendor class PXEClient, BIOS) and prints every OFFER heard within
// the time limit as a JSON line — to see several servers answer one client. With `proxy`, it then
// takes the address a non-proxy server offered, puts it on IFACE, and asks the proxyDHCP server
// on port 4011 for its boot file, as PXE firmware does; the ACK is printed too.
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { createPacket, decode, encode, getOption, setOption, type DhcpPacket } from '../../src/dhcp/packet.js';

const [mac, iface, seconds = '3', mode = ''] = process.argv.slice(2);
const xid = Math.floor(Math.random() * 2 ** 31);
const offers: DhcpPacket[] = [];
const print = (kind: string, p: DhcpPacket) => process.stdout.write(JSON.stringify({
  kind, type: getOption(p, 'message-type'), server: getOption(p, 'server-identifier'), yiaddr: p.yiaddr, siaddr: p.siaddr,
  file: p.file, vendorClass: getOption(p, 'vendor-class') ?? null,
}) + '\n');

function pxe(type: number, ciaddr = '0.0.0.0'): Buffer {
  const d = createPacket({ chaddr: mac, xid, flags: ciaddr === '0.0.0.0' ? 0x8000 : 0, ciaddr });
  setOption(d, 'message-type', type as any);
  setOption(d, 'vendor-class', 'PXEClient:Arch:00000:UNDI:002001');
  setOption(d, 'client-arch', [0]);
  return encode(d);
}

const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
sock.on('message', (buf) => {
  try {
    const p = decode(buf);
    if (p.op === 2 && p.chaddr === mac && p.xid === xid) { offers.push(p); print('offer', p); }
  } catch { /* not for us */ }
});
// Firmware sends from 0.0.0.0 through a raw socket; a UDP socket needs an address and a route for
// the limited broadcast: a link-local address and a /32 route, both on the lab interface only.
execFileSync('ip', ['addr', 'add', '169.254.77.77/16', 'dev', iface]);
execFileSync('ip', ['route', 'add', '255.255.255.255/32', 'dev', iface]);
sock.bind(68, '0.0.0.0', () => {
  sock.setBroadcast(true);
  sock.send(pxe(1), 67, '255.255.255.255', (err) => { if (err) process.stdout.write(JSON.stringify({ kind: 'error', message: err.message }) + '\n'); });
  setTimeout(() => {
    sock.close();
    if (mode !== 'proxy') return;
    const lease = offers.find((o) => o.yiaddr !== '0.0.0.0');
    const proxy = offers.find((o) => o.yiaddr === '0.0.0.0' && o.file);
    if (!lease || !proxy) { process.stdout.write(JSON.stringify({ kind: 'error', message: 'need one address offer and one proxy offer' }) + '\n'); return; }
    execFileSync('ip', ['addr', 'add', `${lease.yiaddr}/24`, 'dev', iface]);
    const s2 = dgram.createSocket('udp4');
    s2.on('message', (buf) => { print('proxy-ack', decode(buf)); s2.close(); });
    s2.bind(68, lease.yiaddr, () => s2.send(pxe(3, lease.yiaddr), 4011, String(getOption(proxy, 'server-identifier'))));
    setTimeout(() => { try { s2.close(); } catch { /* closed */ } }, 3000);
  }, Number(seconds) * 1000);
});
