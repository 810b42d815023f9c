import type { Logger } from "@aws-lambda-powertools/logger";
import type { AuditEvent, AuditLog } from "./audit-log.js";

/**
 * Writes each audit event as one structured log line (`"message": "audit"`, the event under
 * `audit`). In AWS the line lands in CloudWatch Logs; a subscription filter on
 * `{ $.message = "audit" }` ships the trail elsewhere. Callers never put tokens or
 * credentials in events.
 */
export class LoggerAuditLog implements AuditLog {
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  record(event: AuditEvent): void {
    this.#logger.info("audit", { audit: { ...event, at: new Date().toISOString() } });
  }
}

/** Keeps events in memory; used by tests and the sandbox's printed summary. */
export class MemoryAuditLog implements AuditLog {
  readonly events: AuditEvent[] = [];

  record(event: AuditEvent): void {
    this.events.push(event);
  }
}
