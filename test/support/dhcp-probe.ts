// A minimal PXE-like DHCP client run INSIDE a lab namespace (node dist/test/support/dhcp-probe.js):
// broadcasts one DISCOVER with the options given on the command line and prints every OFFER it
// hears within the time limit as JSON lines — to see several servers answer one client.
import dgram from 'node:dgram';
import { createPacket, decode, encode, getOption, setOption } from '../../src/dhcp/packet.js';

const [mac, seconds = '3', vendorClass = 'PXEClient:Arch:00000:UNDI:002001'] = process.argv.slice(2);
const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
sock.on('message', (buf) => {
  try {
    const p = decode(buf);
    if (p.op !== 2 || p.chaddr !== mac) return;
    process.stdout.write(JSON.stringify({
      type: getOption(p, 'message-type'), server: getOption(p, 'server-identifier'), yiaddr: p.yiaddr, siaddr: p.siaddr,
      file: p.file, vendorClass: getOption(p, 'vendor-class') ?? null,
    }) + '\n');
  } catch { /* not for us */ }
});
sock.bind(68, '0.0.0.0', () => {
  sock.setBroadcast(true);
  const d = createPacket({ chaddr: mac, xid: Math.floor(Math.random() * 2 ** 31), flags: 0x8000 });
  setOption(d, 'message-type', 1);
  setOption(d, 'vendor-class', vendorClass);
  setOption(d, 'client-arch', [0]);
  sock.send(encode(d), 67, '255.255.255.255');
  setTimeout(() => { sock.close(); }, Number(seconds) * 1000);
});
