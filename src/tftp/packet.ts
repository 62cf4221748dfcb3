// TFTP packets (RFC 1350 §5, OACK and error 8 from RFC 2347) as symmetric codecs: every packet
// kind has encode / decode / encodingLength, and one table maps opcode → codec (STYLE.md).
// The decoder is the first thing a hostile datagram meets: it returns a packet or throws
// TftpDecodeError, nothing else, and never reads past the buffer.

export class TftpDecodeError extends Error {
  override name = 'TftpDecodeError';
}

export const OPCODES = { rrq: 1, wrq: 2, data: 3, ack: 4, error: 5, oack: 6 } as const;
export type PacketType = keyof typeof OPCODES;

/** RFC 1350 §5 error codes, plus 8 from RFC 2347. */
export const ERROR_CODES = {
  notDefined: 0,
  fileNotFound: 1,
  accessViolation: 2,
  diskFull: 3,
  illegalOperation: 4,
  unknownTransferId: 5,
  fileExists: 6,
  noSuchUser: 7,
  optionNegotiation: 8,
} as const;

/**
 * Options as name → value, in the order they came, names spelled as the peer spelled them
 * (RFC 2347: names are case-insensitive; a reply echoes the client's spelling). A repeated name
 * keeps its first value.
 */
export type TftpOptions = Record<string, string>;

export interface RequestPacket {
  type: 'rrq' | 'wrq';
  filename: string;
  /** As sent: `octet`, `netascii`, `mail`, any case. */
  mode: string;
  options: TftpOptions;
}
export interface DataPacket { type: 'data'; block: number; data: Buffer }
export interface AckPacket { type: 'ack'; block: number }
export interface ErrorPacket { type: 'error'; code: number; message: string }
export interface OackPacket { type: 'oack'; options: TftpOptions }
export type TftpPacket = RequestPacket | DataPacket | AckPacket | ErrorPacket | OackPacket;

interface Codec<P extends TftpPacket> {
  /** Length of the body (after the 2-byte opcode). */
  encodingLength(p: P): number;
  /** Write the body at `offset`; returns the offset after it. */
  encode(p: P, buf: Buffer, offset: number): number;
  /** Decode the body `buf[offset..]`. */
  decode(buf: Buffer, offset: number, type: P['type']): P;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function strLength(s: string): number {
  return Buffer.byteLength(s, 'utf8') + 1;
}

function writeStr(s: string, buf: Buffer, offset: number): number {
  if (s.includes('\0')) throw new TypeError(`TFTP string ${JSON.stringify(s)} contains a NUL`);
  offset += buf.write(s, offset, 'utf8');
  buf[offset] = 0;
  return offset + 1;
}

/** A NUL-terminated UTF-8 string at `offset`: [string, offset after the NUL]. */
function readStr(buf: Buffer, offset: number, what: string, requireNul = true): [string, number] {
  let end = buf.indexOf(0, offset);
  if (end === -1) {
    if (requireNul) throw new TftpDecodeError(`${what} is not NUL-terminated`);
    end = buf.length;
  }
  let s: string;
  try {
    s = utf8.decode(buf.subarray(offset, end));
  } catch {
    throw new TftpDecodeError(`${what} is not valid UTF-8`);
  }
  return [s, Math.min(end + 1, buf.length)];
}

function setOption(options: TftpOptions, seen: Set<string>, name: string, value: string): void {
  const lower = name.toLowerCase();
  if (seen.has(lower)) return;
  seen.add(lower);
  // defineProperty: a name like "__proto__" becomes plain data, never the object's prototype.
  Object.defineProperty(options, name, { value, enumerable: true, writable: true, configurable: true });
}

const optionsCodec = {
  encodingLength(options: TftpOptions): number {
    let n = 0;
    for (const [k, v] of Object.entries(options)) n += strLength(k) + strLength(v);
    return n;
  },
  encode(options: TftpOptions, buf: Buffer, offset: number): number {
    for (const [k, v] of Object.entries(options)) {
      if (k === '') throw new TypeError('TFTP option name is empty');
      offset = writeStr(v, buf, writeStr(k, buf, offset));
    }
    return offset;
  },
  decode(buf: Buffer, offset: number): TftpOptions {
    const options: TftpOptions = {};
    const seen = new Set<string>();
    while (offset < buf.length) {
      if (buf[offset] === 0) {
        // Some firmware pads its request with NULs after the last option: tolerate only that.
        if (buf.subarray(offset).every((b) => b === 0)) break;
        throw new TftpDecodeError('empty option name');
      }
      const [name, afterName] = readStr(buf, offset, 'option name');
      if (afterName >= buf.length) throw new TftpDecodeError(`option ${JSON.stringify(name)} has no value`);
      const [value, afterValue] = readStr(buf, afterName, `value of option ${JSON.stringify(name)}`);
      setOption(options, seen, name, value);
      offset = afterValue;
    }
    return options;
  },
};

const requestCodec: Codec<RequestPacket> = {
  encodingLength: (p) => strLength(p.filename) + strLength(p.mode) + optionsCodec.encodingLength(p.options),
  encode(p, buf, offset) {
    if (p.mode === '') throw new TypeError('TFTP request mode is empty');
    offset = writeStr(p.mode, buf, writeStr(p.filename, buf, offset));
    return optionsCodec.encode(p.options, buf, offset);
  },
  decode(buf, offset, type) {
    const [filename, afterName] = readStr(buf, offset, 'filename');
    if (afterName >= buf.length) throw new TftpDecodeError('request has no mode');
    const [mode, afterMode] = readStr(buf, afterName, 'mode');
    if (mode === '') throw new TftpDecodeError('request mode is empty');
    return { type, filename, mode, options: optionsCodec.decode(buf, afterMode) };
  },
};

function checkBlock(block: number): void {
  if (!Number.isInteger(block) || block < 0 || block > 0xffff) throw new RangeError(`TFTP block number ${block} is not 0..65535`);
}

const dataCodec: Codec<DataPacket> = {
  encodingLength: (p) => 2 + p.data.length,
  encode(p, buf, offset) {
    checkBlock(p.block);
    buf.writeUInt16BE(p.block, offset);
    p.data.copy(buf, offset + 2);
    return offset + 2 + p.data.length;
  },
  decode(buf, offset, type) {
    if (buf.length - offset < 2) throw new TftpDecodeError('DATA packet has no block number');
    // A view, not a copy: callers that keep it past the datagram's life copy it themselves.
    return { type, block: buf.readUInt16BE(offset), data: buf.subarray(offset + 2) };
  },
};

const ackCodec: Codec<AckPacket> = {
  encodingLength: () => 2,
  encode(p, buf, offset) {
    checkBlock(p.block);
    buf.writeUInt16BE(p.block, offset);
    return offset + 2;
  },
  decode(buf, offset, type) {
    if (buf.length - offset < 2) throw new TftpDecodeError('ACK packet has no block number');
    return { type, block: buf.readUInt16BE(offset) };
  },
};

const errorCodec: Codec<ErrorPacket> = {
  encodingLength: (p) => 2 + strLength(p.message),
  encode(p, buf, offset) {
    checkBlock(p.code);
    buf.writeUInt16BE(p.code, offset);
    return writeStr(p.message, buf, offset + 2);
  },
  decode(buf, offset, type) {
    if (buf.length - offset < 2) throw new TftpDecodeError('ERROR packet has no error code');
    // Lenient on the terminator: an abort from a sloppy client must still abort.
    const [message] = readStr(buf, offset + 2, 'error message', false);
    return { type, code: buf.readUInt16BE(offset), message };
  },
};

const oackCodec: Codec<OackPacket> = {
  encodingLength: (p) => optionsCodec.encodingLength(p.options),
  encode: (p, buf, offset) => optionsCodec.encode(p.options, buf, offset),
  decode: (buf, offset, type) => ({ type, options: optionsCodec.decode(buf, offset) }),
};

type PacketOf<T extends PacketType> = T extends RequestPacket['type'] ? RequestPacket : Extract<TftpPacket, { type: T }>;

const CODECS: { [T in PacketType]: Codec<PacketOf<T>> } = {
  rrq: requestCodec,
  wrq: requestCodec,
  data: dataCodec,
  ack: ackCodec,
  error: errorCodec,
  oack: oackCodec,
};

const TYPES: Record<number, PacketType> = Object.fromEntries(
  Object.entries(OPCODES).map(([type, op]) => [op, type as PacketType]));

function codecOf(p: TftpPacket): Codec<TftpPacket> {
  const codec = CODECS[p.type] as Codec<TftpPacket> | undefined;
  if (!codec) throw new TypeError(`unknown TFTP packet type ${JSON.stringify((p as { type: unknown }).type)}`);
  return codec;
}

export function encodingLength(p: TftpPacket): number {
  return 2 + codecOf(p).encodingLength(p);
}

/** Encode a packet; throws TypeError/RangeError for packets that cannot be put on the wire. */
export function encode(p: TftpPacket, buf?: Buffer, offset = 0): Buffer {
  const codec = codecOf(p);
  const len = 2 + codec.encodingLength(p);
  const out = buf ?? Buffer.allocUnsafe(len);
  if (out.length - offset < len) throw new RangeError(`buffer too small for a ${len}-byte TFTP packet`);
  out.writeUInt16BE(OPCODES[p.type], offset);
  const end = codec.encode(p, out, offset + 2);
  return buf ? out.subarray(offset, end) : out;
}

/** Decode one datagram; throws TftpDecodeError (only) when it is not a TFTP packet. */
export function decode(buf: Buffer): TftpPacket {
  if (buf.length < 2) throw new TftpDecodeError(`packet of ${buf.length} byte(s) has no opcode`);
  const op = buf.readUInt16BE(0);
  const type = TYPES[op];
  if (!type) throw new TftpDecodeError(`unknown opcode ${op}`);
  return (CODECS[type] as Codec<TftpPacket>).decode(buf, 2, type);
}
