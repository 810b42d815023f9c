import type { Task } from "../domain/task.js";

/** One structured audit event (CONTRACT.md section 6): who, for whom, which task, what happened. */
export interface AuditEvent {
  readonly event:
    | "vend.allowed"
    | "vend.denied"
    | "access.denied"
    | "credentials.issued"
    | "task.failed"
    | "task.completed"
    | "task.revoked"
    | "task.expired"
    | "task.pending_approval"
    | "task.approved"
    | "task.denied"
    | "approval.recorded"
    | "task.closed"
    | "task.revocation_failed"
    | "revocation.fallback"
    | "revocation.role_missing"
    | "revocation.pruned"
    | "lifecycle.signal_failed"
    | "secret.rotated"
    | "secret.rotation_skipped"
    | "drift.detected";
  readonly requestId?: string;
  readonly taskId?: string;
  readonly template?: string;
  readonly agent?: { readonly issuer: string; readonly id: string };
  readonly user?: string;
  readonly tenant?: string;
  readonly reason?: string;
  readonly policies?: readonly string[];
  readonly [key: string]: unknown;
}

export interface AuditLog {
  record(event: AuditEvent): void;
}

/** The fields every task event carries: which task, which template, which agent, for whom. */
export function taskAuditFields(task: Task) {
  return {
    taskId: task.taskId,
    template: task.template,
    agent: task.agent,
    user: task.onBehalfOf?.user,
    tenant: task.onBehalfOf?.tenant,
  };
}
