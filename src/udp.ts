// UDP socket settings shared by the protocol servers (DHCP, DNS).
import dns from 'node:dns';
import net from 'node:net';
import type dgram from 'node:dgram';

/**
 * dgram's `lookup` for a socket that sends to IP literals (the source of a datagram it received,
 * a relay's giaddr, a broadcast address): an IP is handed back as it is, instead of through
 * dns.lookup's next-tick callback on every send. A name (a listen address such as `localhost`)
 * still goes through dns.lookup.
 */
export const literalLookup: dgram.SocketOptions['lookup'] = (address, family, done) => {
  const v = net.isIP(address);
  if (v) done(null, address, v);
  else dns.lookup(address, family as number, done);
};
