// The boot file tree that TFTP and HTTP both serve (DESIGN.md §3): static assets under a root
// directory plus per-node files rendered at fetch time. Protocol servers see only this interface.

export interface BootRequest {
  /** The requested path as the client sent it (TFTP filename or HTTP path without query). */
  path: string;
  /** The client's IP address as seen by the server. */
  remote: string;
  protocol: 'tftp' | 'http';
}

export interface BootFile {
  size: number;
  /** Whole content (rendered files, cached small assets) or a byte range of a file on disk. */
  read(start?: number, end?: number): Promise<Buffer>;
  /** Streaming access for large files; `end` inclusive. */
  stream?(start?: number, end?: number): NodeJS.ReadableStream;
  contentType?: string;
}

export interface FileTree {
  /** null when nothing is at that path (404 / TFTP error 1). Throws BootPathError for hostile paths. */
  resolve(req: BootRequest): Promise<BootFile | null>;
}

export class BootPathError extends Error {}

/**
 * A request path as safe segments: no `..`, no empty or NUL-bearing segments, no backslashes,
 * no absolute escapes. Leading slashes are dropped (TFTP clients send both forms).
 */
export function safeSegments(path: string): string[] {
  if (path.includes('\0') || path.includes('\\')) throw new BootPathError(`path ${JSON.stringify(path)} contains a NUL or backslash`);
  const segs = path.split('/').filter((s) => s !== '' && s !== '.');
  if (segs.some((s) => s === '..')) throw new BootPathError(`path ${JSON.stringify(path)} contains ".."`);
  return segs;
}
