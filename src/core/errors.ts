/**
 * Errors the user can act on. The CLI prints `message` alone and exits 1;
 * the HTTP layer maps `HttpError` to its status with a JSON body.
 */
export class UserError extends Error {
  override name = 'UserError';
}

/** An error that becomes an HTTP response: `status`, a stable `code`, and a message that says what to fix. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
