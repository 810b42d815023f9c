import type { Task, TaskStatus } from "../domain/task.js";

/** Lifecycle bookkeeping a repository may set on a task. */
export type TaskMarks = Partial<
  Pick<Task, "taskToken" | "approvalToken" | "revokedAt" | "secretsRotatedAt" | "closedAt">
>;

import type { TaskTemplate } from "../domain/template.js";

export type CreateTaskResult =
  /** The task and its TTL lease were written atomically. */
  | { readonly created: true; readonly task: Task }
  /** The agent already has a task for this Idempotency-Key: that task, unchanged. */
  | { readonly created: false; readonly task: Task };

/**
 * Port: durable task records. The DynamoDB adapter keeps tasks, their TTL leases and
 * idempotency keys in one table; a create is one transaction.
 */
export interface TaskRepository {
  /**
   * Writes the task, its TTL lease (expiring at `task.expiresAt`) and, when the task has an
   * `idempotencyKey`, the per-agent idempotency record — all or nothing. When the agent
   * already used that key for a live task, nothing is written and that task is returned.
   */
  create(task: Task): Promise<CreateTaskResult>;
  get(taskId: string): Promise<Task | undefined>;
  /** Marks a task `failed` with a safe reason (only from `active`/`pending_approval`). */
  markFailed(taskId: string, reason: string): Promise<void>;
  /** Records one credential issue: bumps `issuedCount`, raises `lastCredentialExpiry`. */
  recordIssue(taskId: string, credentialExpiration: string): Promise<void>;
  /**
   * Moves a task from one of `from` to `to` (conditional write), setting `endedAt` and the
   * reason. Returns the updated task, or `undefined` when the task was in none of `from`.
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

/** Port: task templates by name. Writes are validated by the caller (`parseTemplate` + `lintTemplate`). */
export interface TemplateStore {
  get(name: string): Promise<TaskTemplate | undefined>;
  put(template: TaskTemplate): Promise<void>;
  list(): Promise<TaskTemplate[]>;
}
