import type { Zone } from "./identity.js";

/**
 * Task states of CONTRACT.md section 3, plus `revocation_failed` (revocation, rotation or
 * closing failed after retries; the TTL lease backstop remains). A task that is not `active`
 * never yields credentials again.
 */
export const TASK_STATUSES = [
  "pending_approval",
  "active",
  "completed",
  "expired",
  "revoked",
  "denied",
  "failed",
  "revocation_failed",
] as const;

export type TaskStatus = (typeof TASK_STATUSES)[number];

/** How a task's life ended, as the lifecycle state machine is told. */
export type TaskOutcome = "completed" | "revoked" | "expired";

export interface AgentRef {
  readonly issuer: string;
  readonly id: string;
}

export interface OnBehalfOf {
  readonly issuer: string;
  readonly user: string;
  readonly tenant: string;
}

/** The durable task record. Times are RFC 3339 strings in UTC. */
export interface Task {
  readonly taskId: string;
  readonly status: TaskStatus;
  readonly template: string;
  readonly zone: Zone;
  readonly roleArn: string;
  readonly agent: AgentRef;
  readonly onBehalfOf?: OnBehalfOf;
  readonly purpose?: string;
  readonly parameters: Readonly<Record<string, string>>;
  /** The rendered session policy exactly as sent to STS (compact JSON). */
  readonly sessionPolicy: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly idempotencyKey?: string;
  /** Why a task ended as `failed`/`revoked`/`denied`; safe to show the owner. */
  readonly reason?: string;
  /** Latest `Expiration` of any credential issued for this task (for pruning revocations). */
  readonly lastCredentialExpiry?: string;
  /** How many times credentials were issued for this task. */
  readonly issuedCount: number;
  /** The lifecycle execution's task token (a capability: never logged, never shown). */
  readonly taskToken?: string;
  /** The lifecycle's approval-wait task token (same care as `taskToken`). */
  readonly approvalToken?: string;
  /** Requested life in seconds; for a task awaiting approval it starts at approval. */
  readonly ttlSeconds?: number;
  /** Distinct approvers so far (`issuer|id`). */
  readonly approvals?: readonly string[];
  /** When the task's sessions were denied on its role. */
  readonly revokedAt?: string;
  /** When the template's secrets were rotated after the task ended. */
  readonly secretsRotatedAt?: string;
  /** When the lifecycle finished with the task. */
  readonly closedAt?: string;
  /** When the task ended (completed, revoked or expired). */
  readonly endedAt?: string;
}

/**
 * A task's status as a reader must see it: DynamoDB TTL deletion can lag, so an `active`
 * task whose deadline has passed is reported `expired` whatever the record says.
 */
export function effectiveStatus(task: Pick<Task, "status" | "expiresAt">, now: Date): TaskStatus {
  if (
    (task.status === "active" || task.status === "pending_approval") &&
    Date.parse(task.expiresAt) <= now.getTime()
  ) {
    return task.status === "active" ? "expired" : "denied";
  }
  return task.status;
}
