// A minimal QEMU Machine Protocol client: one connection per call, greeting, qmp_capabilities,
// then one command; asynchronous events are skipped. Every step is bounded.
import net from 'node:net';

export class QmpError extends Error {
  constructor(message: string, readonly code?: string, readonly qmpClass?: string) {
    super(message);
    this.name = 'QmpError';
  }
}

/** Run one QMP command on the unix socket `path`; resolves with its "return" value. */
export function qmpCommand<T = unknown>(path: string, execute: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path });
    let buffer = '';
    let stage: 'greeting' | 'capabilities' | 'command' = 'greeting';
    let settled = false;
    const finish = (err: Error | undefined, value?: T) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err); else resolve(value as T);
    };
    const timer = setTimeout(() => finish(new QmpError(`QMP ${execute} on ${path}: no answer within ${timeoutMs} ms`, 'ETIMEDOUT')), timeoutMs);
    const send = (cmd: string, a?: Record<string, unknown>) => sock.write(`${JSON.stringify(a ? { execute: cmd, arguments: a } : { execute: cmd })}\n`);
    sock.setEncoding('utf8');
    sock.on('error', (err: NodeJS.ErrnoException) => finish(new QmpError(`QMP ${execute} on ${path}: ${err.message}`, err.code)));
    sock.on('close', () => {
      // `quit` answers and then closes; any other early close is an error.
      finish(new QmpError(`QMP ${execute} on ${path}: connection closed before the answer`, 'ECONNRESET'));
    });
    sock.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (!line) continue;
        let msg: Record<string, unknown>;
        try { msg = JSON.parse(line); } catch { return finish(new QmpError(`QMP ${execute} on ${path}: not JSON: ${line.slice(0, 200)}`)); }
        if ('event' in msg) continue;
        if (stage === 'greeting') {
          if (!('QMP' in msg)) return finish(new QmpError(`QMP ${execute} on ${path}: no QMP greeting`));
          stage = 'capabilities';
          send('qmp_capabilities');
        } else if ('error' in msg) {
          const e = msg.error as { class?: string; desc?: string };
          return finish(new QmpError(`QMP ${stage === 'capabilities' ? 'qmp_capabilities' : execute} on ${path}: ${e.desc ?? 'error'}`, undefined, e.class));
        } else if (stage === 'capabilities') {
          stage = 'command';
          send(execute, args);
        } else {
          return finish(undefined, msg.return as T);
        }
      }
    });
  });
}
