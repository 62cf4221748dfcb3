// Ending a session: POST /api/v1/logout revokes the bearer token the request carries (the web UI's
// Log out; any API client may use it). Tokens are stored as SHA-256 hex digests (src/auth/auth.ts);
// the digest is computed the same way here, in SQL.
import type { FastifyInstance } from 'fastify';
import type { Store } from '../store/db.js';

export function registerSessionApi(app: FastifyInstance, store: Store): void {
  app.post('/api/v1/logout', async (req, reply) => {
    const h = req.headers.authorization ?? '';
    const token = h.startsWith('Bearer ') ? h.slice(7) : '';
    await store.query(`DELETE FROM tokens WHERE hash = encode(sha256(convert_to($1, 'UTF8')), 'hex') AND user_id IS NOT NULL`, [token]);
    return reply.status(204).send();
  });
}
