import type { Logger } from "@aws-lambda-powertools/logger";
import { InternalError, JitvError } from "../domain/errors.js";
import type { HttpResponse } from "./types.js";

/** Headers on every response: JSON, never cached (responses may hold credentials), the request id. */
export function baseHeaders(requestId: string): Record<string, string> {
  return {
    "content-type": "application/json",
    "cache-control": "no-store",
    "x-request-id": requestId,
  };
}

export function jsonResponse(status: number, body: unknown, requestId: string): HttpResponse {
  return { status, headers: baseHeaders(requestId), body: JSON.stringify(body) };
}

/**
 * Turns any thrown value into the contract's error body. Known errors keep their code,
 * status, message and headers; anything else becomes `500 internal` with a generic message,
 * and only its class name and message are logged (with the request id) — never the request,
 * token or credentials.
 */
export function errorResponse(err: unknown, requestId: string, logger: Logger): HttpResponse {
  const known = err instanceof JitvError ? err : new InternalError();
  if (known.status >= 500) {
    const cause = err instanceof JitvError ? err.cause : err;
    logger.error("request failed", {
      requestId,
      code: known.code,
      error: known.message,
      cause: cause instanceof Error ? `${cause.name}: ${cause.message}` : undefined,
    });
  } else {
    logger.info("request refused", { requestId, code: known.code, error: known.message });
  }
  return {
    status: known.status,
    headers: { ...baseHeaders(requestId), ...known.headers },
    body: JSON.stringify({ error: { code: known.code, message: known.message } }),
  };
}
