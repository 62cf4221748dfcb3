// Errors the CLI reports to the operator as `error: ...` with an exit code, never as a stack trace.

export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1, readonly hint?: string) {
    super(message);
  }
}

/** An error answer of the API: `{error, message, field?}` (docs/api.md "Errors"). */
export class ApiError extends CliError {
  constructor(readonly status: number, readonly kind: string, message: string, readonly field?: string, hint?: string) {
    super(message, 1, hint);
  }
}

/** The lines printed on stderr for any error thrown by a command. */
export function describeError(e: unknown): string[] {
  if (e instanceof ApiError) {
    const lines = [`error: ${e.message}${e.field ? ` (field: ${e.field})` : ''}`];
    if (e.hint) lines.push(`hint: ${e.hint}`);
    return lines;
  }
  if (e instanceof CliError) return e.hint ? [`error: ${e.message}`, `hint: ${e.hint}`] : [`error: ${e.message}`];
  if (e instanceof Error) return [`error: ${e.message}`];
  return [`error: ${String(e)}`];
}

export function exitCodeOf(e: unknown): number {
  return e instanceof CliError ? e.exitCode : 1;
}
