// Errors for operators: what was wrong, with which object, what to do. The API maps each
// kind to its HTTP status; the CLI prints the message. Never a bare stack trace.

export type ErrorKind = 'invalid' | 'not-found' | 'conflict' | 'precondition-failed' | 'unauthorized' | 'forbidden';

const STATUS: Record<ErrorKind, number> = {
  invalid: 400, unauthorized: 401, forbidden: 403, 'not-found': 404, conflict: 409, 'precondition-failed': 412,
};

export class FulcrumError extends Error {
  constructor(readonly kind: ErrorKind, message: string, readonly field?: string) {
    super(message);
  }
  get status(): number { return STATUS[this.kind]; }
}

export const invalid = (field: string, message: string) => new FulcrumError('invalid', message, field);
export const notFound = (what: string, key: unknown, field?: string) =>
  new FulcrumError('not-found', `${what} ${JSON.stringify(key)} does not exist`, field);
export const conflict = (message: string) => new FulcrumError('conflict', message);
