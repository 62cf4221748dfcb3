// A cpio archive in the "newc" format (what the kernel unpacks as an initramfs), written here so
// that building the discovery image needs no cpio program and every header field is ours to fix:
// entries sorted by path, inode numbers in that order, uid/gid 0, one mtime for everything. The
// same entries give the same bytes.

export type CpioEntry =
  | { path: string; type: 'dir'; mode?: number }
  | { path: string; type: 'file'; data: Buffer; mode?: number }
  | { path: string; type: 'symlink'; target: string }
  | { path: string; type: 'char' | 'block'; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000, S_IFCHR = 0o020000, S_IFBLK = 0o060000;

const hex8 = (n: number) => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio: field out of range: ${n}`);
  return n.toString(16).toUpperCase().padStart(8, '0');
};
const pad4 = (n: number) => (4 - (n % 4)) % 4;

function record(name: string, fields: { ino: number; mode: number; nlink: number; mtime: number; size: number; rdevMajor?: number; rdevMinor?: number }, data: Buffer): Buffer[] {
  const nameBuf = Buffer.from(name + '\0', 'utf8');
  const header = '070701' + [
    fields.ino, fields.mode, 0 /* uid */, 0 /* gid */, fields.nlink, fields.mtime, fields.size,
    0, 0 /* dev major/minor */, fields.rdevMajor ?? 0, fields.rdevMinor ?? 0, nameBuf.length, 0 /* check */,
  ].map(hex8).join('');
  // The header (110 bytes) plus the name is padded to a multiple of 4, and so is the data.
  return [Buffer.from(header, 'ascii'), nameBuf, Buffer.alloc(pad4(110 + nameBuf.length)), data, Buffer.alloc(pad4(data.length))];
}

/** Paths are relative ("bin/sh", no leading slash); parents must be listed too. Sorted here. */
export function writeCpio(entries: CpioEntry[], mtime: number): Buffer {
  const seen = new Set<string>();
  for (const e of entries) {
    if (!e.path || e.path.startsWith('/') || e.path.split('/').some((s) => s === '' || s === '.' || s === '..')) throw new Error(`cpio: bad path "${e.path}"`);
    if (seen.has(e.path)) throw new Error(`cpio: duplicate path "${e.path}"`);
    seen.add(e.path);
  }
  for (const p of seen) {
    const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
    if (parent && !seen.has(parent)) throw new Error(`cpio: "${p}" listed without its directory "${parent}"`);
  }
  // Byte-wise order puts every directory before what it contains ("a" < "a/b" < "a0").
  const sorted = [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of sorted) {
    const perm = (m: number | undefined, dflt: number) => (m ?? dflt) & 0o7777;
    switch (e.type) {
      case 'dir': parts.push(...record(e.path, { ino: ino++, mode: S_IFDIR | perm(e.mode, 0o755), nlink: 2, mtime, size: 0 }, Buffer.alloc(0))); break;
      case 'file': parts.push(...record(e.path, { ino: ino++, mode: S_IFREG | perm(e.mode, 0o644), nlink: 1, mtime, size: e.data.length }, e.data)); break;
      case 'symlink': {
        const target = Buffer.from(e.target, 'utf8');
        parts.push(...record(e.path, { ino: ino++, mode: S_IFLNK | 0o777, nlink: 1, mtime, size: target.length }, target));
        break;
      }
      case 'char': case 'block':
        parts.push(...record(e.path, { ino: ino++, mode: (e.type === 'char' ? S_IFCHR : S_IFBLK) | perm(e.mode, 0o600), nlink: 1, mtime, size: 0, rdevMajor: e.major, rdevMinor: e.minor }, Buffer.alloc(0)));
        break;
    }
  }
  parts.push(...record('TRAILER!!!', { ino: 0, mode: 0, nlink: 1, mtime: 0, size: 0 }, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** Read a newc archive back (for tests and `image inspect`-style checks): path → entry summary. */
export function readCpio(buf: Buffer): Array<{ path: string; mode: number; size: number; mtime: number; ino: number; rdevMajor: number; rdevMinor: number; data: Buffer }> {
  const out = [];
  let off = 0;
  for (;;) {
    if (buf.toString('ascii', off, off + 6) !== '070701') throw new Error(`cpio: bad magic at ${off}`);
    const base = off;
    const f = (i: number) => parseInt(buf.toString('ascii', base + 6 + i * 8, base + 14 + i * 8), 16);
    const nameSize = f(11), size = f(6);
    const name = buf.toString('utf8', off + 110, off + 110 + nameSize - 1);
    off += 110 + nameSize; off += pad4(off);
    const data = buf.subarray(off, off + size);
    off += size; off += pad4(off);
    if (name === 'TRAILER!!!') break;
    out.push({ path: name, ino: f(0), mode: f(1), mtime: f(5), size, rdevMajor: f(9), rdevMinor: f(10), data });
  }
  return out;
}
