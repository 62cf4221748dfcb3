// Talking to a `fulcrum server` whose API listens on a unix socket (a server running inside a
// lab network namespace is reachable from the test process only that way).
import http from 'node:http';

export interface UnixApi {
  (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  token: string;
}

function call(socketPath: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({
      socketPath, method, path, timeout: 30000,
      headers: { ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let parsed: unknown = text;
        try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
    req.on('error', reject);
    req.end(data);
  });
}

/** Log in as admin over the socket; the returned function carries the token. */
export async function unixApi(socketPath: string, password: string): Promise<UnixApi> {
  const login = await call(socketPath, '', 'POST', '/api/v1/login', { user: 'admin', password });
  if (login.status !== 200) throw new Error(`login over ${socketPath} failed: ${login.status} ${JSON.stringify(login.body)}`);
  const fn = ((method: string, path: string, body?: unknown) => call(socketPath, login.body.token, method, path, body)) as UnixApi;
  fn.token = login.body.token;
  return fn;
}
