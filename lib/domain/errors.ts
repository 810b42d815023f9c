/**
 * The one error hierarchy of jitv. Every error that reaches a caller carries a stable
 * `code` and HTTP `status` from the public contract (CONTRACT.md section 3); the error
 * middleware turns it into `{"error": {"code", "message"}}`. Messages are written for the
 * caller and never contain token contents, credentials or secret values.
 */
export type ErrorCode =
  | "invalid_request"
  | "invalid_token"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "rate_limited"
  | "upstream_unavailable"
  | "internal";

export const STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  invalid_request: 400,
  invalid_token: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  rate_limited: 429,
  upstream_unavailable: 503,
  internal: 500,
};

export class JitvError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra response headers (e.g. `Retry-After`). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.status = STATUS_BY_CODE[code];
    this.headers = options?.headers ?? {};
  }
}

export class InvalidRequestError extends JitvError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("invalid_request", message, options);
  }
}

export class InvalidTokenError extends JitvError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("invalid_token", message, {
      ...options,
      headers: { "WWW-Authenticate": 'Bearer error="invalid_token"' },
    });
  }
}

export class ForbiddenError extends JitvError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("forbidden", message, options);
  }
}

export class NotFoundError extends JitvError {
  constructor(message: string) {
    super("not_found", message);
  }
}

export class ConflictError extends JitvError {
  constructor(message: string) {
    super("conflict", message);
  }
}

export class RateLimitedError extends JitvError {
  constructor(message: string, retryAfterSeconds?: number) {
    super(
      "rate_limited",
      message,
      retryAfterSeconds === undefined ? undefined : { headers: { "Retry-After": String(retryAfterSeconds) } },
    );
  }
}

export class UpstreamUnavailableError extends JitvError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("upstream_unavailable", message, options);
  }
}

export class InternalError extends JitvError {
  constructor(message = "internal error", options?: { cause?: unknown }) {
    super("internal", message, options);
  }
}

/** Configuration problems found at start-up (issuers file, environment). Never reach HTTP callers. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** True when `error` is an `Error` named `name` (how the AWS SDK v3 tells its exceptions apart). */
export function isNamed<E extends Error = Error>(error: unknown, name: string): error is E {
  return error instanceof Error && error.name === name;
}
