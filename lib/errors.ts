// Errors with a stable code, the context a user needs, and a message that says what to do.
// Messages and context never carry secrets: URLs pass through redactUrl first.

export type ErrorCode =
  | 'USAGE'            // bad command line or configuration (exit 2)
  | 'CONFIG'           // unreadable users file, missing credentials (exit 2)
  | 'HTTP_CLIENT'      // a 4xx the run cannot recover from
  | 'HTTP_RETRY_EXHAUSTED'
  | 'AUTH_EXPIRED'     // refresh failed or impossible
  | 'AUTH_INVALID'     // the user must re-authorise
  | 'API_GONE'         // 410: the API was turned off
  | 'PAGINATION'       // loop, cross-origin next, count mismatch
  | 'BAD_RESPONSE'     // a body that does not have the documented shape
  | 'BAD_RECORD'       // a record that cannot be normalized
  | 'PARTITION'        // a partition value that would escape the output root
  | 'SINK'             // writing output failed
  | 'STATE';           // reading or writing the state file failed

export class EtlError extends Error {
  readonly code: ErrorCode;
  readonly context: Readonly<Record<string, string | number>>;
  constructor(code: ErrorCode, message: string, context: Record<string, string | number> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EtlError';
    this.code = code;
    this.context = context;
  }
}

const SECRET_PARAMS = /^(access_token|refresh_token|token|app_key|appkey|client_secret|api_key|apikey|key|password|code)$/i;

/** A URL safe for logs: no userinfo, secret-looking query values replaced. */
export function redactUrl(input: string | URL): string {
  let url: URL;
  try {
    url = new URL(String(input));
  } catch {
    return '<unparseable url>';
  }
  url.username = '';
  url.password = '';
  for (const key of [...url.searchParams.keys()]) {
    if (SECRET_PARAMS.test(key)) url.searchParams.set(key, 'REDACTED');
  }
  return url.toString();
}

/** Replaces every occurrence of the given secrets in a text (for messages built from server bodies). */
export function redactSecrets(text: string, secrets: Iterable<string | undefined>): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length >= 4) out = out.split(s).join('REDACTED');
  }
  return out;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
