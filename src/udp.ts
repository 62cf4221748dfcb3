// UDP socket settings shared by the protocol servers (DHCP, DNS).
import type dgram from 'node:dgram';

/**
 * dgram's `lookup` for a socket that sends only to IP literals (the source of a datagram it
 * received, a relay's giaddr, a broadcast address): the address is handed back as it is, instead
 * of through dns.lookup's IP check and next-tick callback on every send.
 */
export const literalLookup: dgram.SocketOptions['lookup'] = (address, family, done) => {
  done(null, address, typeof family === 'number' ? family : address.includes(':') ? 6 : 4);
};
