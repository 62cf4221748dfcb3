// Just enough ELF to ship a dynamically linked program in the discovery ramdisk: its interpreter
// (PT_INTERP) and the shared libraries it names (DT_NEEDED). 64-bit little-endian only (x86-64,
// arm64), which is what the image builder targets.

export interface ElfDeps {
  /** e.g. /lib64/ld-linux-x86-64.so.2; undefined for a static program. */
  interpreter?: string;
  /** Sonames in the order the program lists them, e.g. ['libxenctrl.so.4.17', 'libc.so.6']. */
  needed: string[];
}

const PT_LOAD = 1, PT_DYNAMIC = 2, PT_INTERP = 3;
const DT_NULL = 0n, DT_NEEDED = 1n, DT_STRTAB = 5n;

function cstring(buf: Buffer, at: number): string {
  const end = buf.indexOf(0, at);
  return buf.toString('latin1', at, end < 0 ? buf.length : end);
}

export function elfDeps(buf: Buffer, what = 'file'): ElfDeps {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${what} is not an ELF file`);
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error(`${what}: only 64-bit little-endian ELF is supported`);
  const phoff = Number(buf.readBigUInt64LE(32));
  const phentsize = buf.readUInt16LE(54);
  const phnum = buf.readUInt16LE(56);
  if (phentsize < 56) throw new Error(`${what}: program header entries of ${phentsize} bytes (ELF64 needs 56)`);
  if (phoff + phentsize * phnum > buf.length) throw new Error(`${what}: program headers run past the end of the file (truncated?)`);
  const inFile = (offset: bigint, size: bigint, part: string) => {
    if (offset + size > BigInt(buf.length)) throw new Error(`${what}: ${part} runs past the end of the file (truncated?)`);
    return Number(offset);
  };
  const loads: Array<{ vaddr: bigint; offset: bigint; size: bigint }> = [];
  let dynamic: { offset: number; size: number } | undefined;
  let interpreter: string | undefined;
  for (let i = 0; i < phnum; i++) {
    const h = phoff + i * phentsize;
    const type = buf.readUInt32LE(h);
    const offset = buf.readBigUInt64LE(h + 8);
    const vaddr = buf.readBigUInt64LE(h + 16);
    const filesz = buf.readBigUInt64LE(h + 32);
    if (type === PT_LOAD) loads.push({ vaddr, offset, size: filesz });
    if (type === PT_DYNAMIC) dynamic = { offset: inFile(offset, filesz, 'the dynamic section'), size: Number(filesz) };
    if (type === PT_INTERP) interpreter = cstring(buf, inFile(offset, filesz, 'the interpreter name'));
  }
  if (!dynamic) return { interpreter, needed: [] };
  const entries: Array<[bigint, bigint]> = [];
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.size && at + 16 <= buf.length; at += 16) {
    const tag = buf.readBigInt64LE(at);
    if (tag === DT_NULL) break;
    entries.push([tag, buf.readBigUInt64LE(at + 8)]);
  }
  const strtabAddr = entries.find(([t]) => t === DT_STRTAB)?.[1];
  if (strtabAddr === undefined) throw new Error(`${what}: dynamic section without a string table`);
  const seg = loads.find((l) => strtabAddr >= l.vaddr && strtabAddr < l.vaddr + l.size);
  if (!seg) throw new Error(`${what}: string table outside every loaded segment`);
  const strtab = Number(strtabAddr - seg.vaddr + seg.offset);
  if (strtab >= buf.length) throw new Error(`${what}: the string table lies past the end of the file (truncated?)`);
  return { interpreter, needed: entries.filter(([t]) => t === DT_NEEDED).map(([, v]) => cstring(buf, strtab + Number(v))) };
}
