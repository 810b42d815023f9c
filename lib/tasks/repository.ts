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
}

/**
 * Port: durable task records. The DynamoDB adapter keeps tasks, their TTL leases and
 * idempotency keys in one table; a create is one transaction.
 */
export interface TaskRepository {
  /**
   * Writes the task, its TTL lease (expiring at `task.expiresAt`) and, when the task has an
   * `idempotencyKey`, the per-agent idempotency record — all or nothing. When the agent
   * already used that key for a live task, nothing is written and that task is returned (even
   * when its active slots are all taken: a replay takes no slot).
   * @throws RateLimitedError when `options.maxActive` is given and the agent has that many
   *   active-slot tasks of the template
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
