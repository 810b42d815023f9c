import * as z from "zod";
import { isTaskId } from "../domain/ids.js";
import type { AuditEvent } from "./audit-log.js";

/** An audit event as it was recorded: the event and when (RFC 3339). */
export type AuditRecord = AuditEvent & { readonly at: string };

/** Which events to read back (`jitv audit`); every filter given must match. */
export interface AuditQuery {
  readonly taskId?: string;
  /** The agent's id (its token's subject), whatever its issuer. */
  readonly agent?: string;
  /** Only events recorded at or after this time. */
  readonly since?: Date;
  /** At most this many events: the newest ones. */
  readonly limit: number;
  /**
   * A tenant's events only (a customer-zone admin's view); `null`: only events naming no tenant
   * (a workforce admin whom Cedar does not let see the customer zone). @default every event
   */
  readonly tenant?: string | null;
}

/** Port: reads the audit trail back (CloudWatch Logs Insights when deployed, the sandbox's own trail locally). */
export interface AuditReader {
  /** The newest `limit` events matching `query`, oldest first. */
  read(query: AuditQuery): Promise<AuditRecord[]>;
}

/** Most events one read returns. */
export const MAX_AUDIT_LIMIT = 1000;
/** Events one read returns when no limit is given. */
export const DEFAULT_AUDIT_LIMIT = 100;

/**
 * The characters an agent id or tenant may have in an audit filter. Values are placed inside a
 * quoted Logs Insights string, so quotes, backslashes, pipes, backticks and whitespace are refused
 * rather than escaped: a filter value can never change the query around it.
 */
export const AUDIT_FILTER_VALUE = /^[\w.@:/+=,-]{1,256}$/;

const filterValue = z
  .string()
  .regex(AUDIT_FILTER_VALUE, "must be 1..256 letters, digits or . _ @ : / + = , -");

/**
 * The filters of `GET /v1/sandbox/audit` and `jitv audit`, as query-string values: `task` a task id,
 * `agent` an agent id, `since` an RFC 3339 time, `limit` 1..1000 (default 100). Unknown keys are refused.
 */
export const auditQueryParamsSchema = z
  .object({
    task: z.string().refine(isTaskId, "must be a task id (tsk_ and 26 characters)").optional(),
    agent: filterValue.optional(),
    since: z.iso.datetime({ offset: true }).optional(),
    limit: z.coerce.number().int().min(1).max(MAX_AUDIT_LIMIT).optional(),
  })
  .strict();

/** The query those parameters describe. */
export function auditQueryOf(params: z.infer<typeof auditQueryParamsSchema>): AuditQuery {
  return {
    ...(params.task === undefined ? {} : { taskId: params.task }),
    ...(params.agent === undefined ? {} : { agent: params.agent }),
    ...(params.since === undefined ? {} : { since: new Date(params.since) }),
    limit: params.limit ?? DEFAULT_AUDIT_LIMIT,
  };
}

/** True when `record` passes every filter of `query` (the limit aside). */
export function matchesAuditQuery(record: AuditRecord, query: AuditQuery): boolean {
  if (query.taskId !== undefined && record.taskId !== query.taskId) return false;
  if (query.agent !== undefined && record.agent?.id !== query.agent) return false;
  if (query.since !== undefined && Date.parse(record.at) < query.since.getTime()) return false;
  if (query.tenant === null && record.tenant !== undefined) return false;
  if (typeof query.tenant === "string" && record.tenant !== query.tenant) return false;
  return true;
}
