import { InvalidTokenError } from "../domain/errors.js";
import type { Task, TaskStatus } from "../domain/task.js";

/** Lifecycle bookkeeping a repository may set on a task. */
export type TaskMarks = Partial<
  Pick<Task, "taskToken" | "approvalToken" | "revokedAt" | "secretsRotatedAt" | "closedAt">
>;

export type CreateTaskResult =
  /** The task and its TTL lease were written atomically. */
  | { readonly created: true; readonly task: Task }
  /** The agent already has a task for this Idempotency-Key: that task, unchanged. */
  | { readonly created: false; readonly task: Task };

/** Options of {@link TaskRepository.create}. */
export interface CreateTaskOptions {
  /**
   * The template's `maxActivePerAgent`: the task takes one of the agent's active slots for its
   * template in the same transaction, and the create fails with `RateLimitedError` when all
   * `maxActive` are taken. The slot is freed by the status change that ends the task. Without
   * it, no slot is taken or checked.
   */
  readonly maxActive?: number;
  /**
   * Take one token from the agent's `vend` bucket in the same write (`RateLimitedError` with
   * `Retry-After` when it is empty). A refused create takes none.
   */
  readonly rate?: boolean;
  /**
   * Tokens whose `jti` the vend spends in the same write (single use):
   * `ReplayedTokenError` naming the first one already spent. A refused create spends none.
   */
  readonly tokens?: readonly SingleUseToken[];
}

/** A verified token whose `jti` a vend spends. */
export interface SingleUseToken {
  readonly issuer: string;
  readonly jti: string;
  /** The token's `exp` (epoch seconds): its `jti` stays spent until then, plus a grace period. */
  readonly expiresAt: number;
  /** Which of the vend's tokens it is, for the audit trail. */
  readonly role: "agent" | "subject";
}

/** `401 invalid_token` ("token already used"): a token's `jti` was already spent. */
export class ReplayedTokenError extends InvalidTokenError {
  readonly token: SingleUseToken["role"];

  constructor(token: SingleUseToken["role"]) {
    super("token already used");
    this.token = token;
  }
}

/**
 * Port: durable task records. The DynamoDB adapter keeps tasks, their TTL leases and
 * idempotency keys in one table; a create is one transaction, which also takes the vend's rate
 * token, spends its tokens' `jti` and takes its active slot (the vend's one critical write).
 */
export interface TaskRepository {
  /**
   * Writes the task, its TTL lease (expiring at `task.expiresAt`) and, when the task has an
   * `idempotencyKey`, the per-agent idempotency record — all or nothing. When the agent
   * already used that key for a live task, no task is written and that task is returned (even
   * when its active slots are all taken: a replay takes no slot), once its rate token and `jti`
   * are taken as for a new task. Refusals come in this order: rate, replayed token, then the
   * active slots.
   * @throws RateLimitedError when `options.rate` is set and the agent's bucket is empty, or
   *   `options.maxActive` is given and the agent has that many active-slot tasks of the template
   * @throws ReplayedTokenError when one of `options.tokens` was already spent
   */
  create(task: Task, options?: CreateTaskOptions): Promise<CreateTaskResult>;
  get(taskId: string): Promise<Task | undefined>;
  /** Marks a task `failed` with a safe reason (only from `active`/`pending_approval`); frees its active slot. */
  markFailed(taskId: string, reason: string): Promise<void>;
  /** Records one credential issue: bumps `issuedCount`, raises `lastCredentialExpiry`. */
  recordIssue(taskId: string, credentialExpiration: string): Promise<void>;
  /**
   * Moves a task from one of `from` to `to` (conditional write), setting `endedAt` and the
   * reason. Returns the updated task, or `undefined` when the task was in none of `from`. A move
   * to a status other than `active`/`pending_approval` frees the task's active slot, once.
   * @throws NotFoundError when the task does not exist
   */
  transition(
    taskId: string,
    from: readonly TaskStatus[],
    to: TaskStatus,
    reason?: string,
  ): Promise<Task | undefined>;
  /** Sets lifecycle bookkeeping attributes. @throws NotFoundError when the task does not exist */
  mark(taskId: string, marks: TaskMarks): Promise<void>;
}
