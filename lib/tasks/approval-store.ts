import type { Task } from "../domain/task.js";

/** Port: the approval state of tasks that wait for humans. */
export interface ApprovalStore {
  /**
   * Adds one distinct approver to a `pending_approval` task. Returns every approver so far,
   * or `undefined` when the task is not pending or this approver already approved.
   */
  recordApproval(taskId: string, approver: string): Promise<readonly string[] | undefined>;
  /**
   * Activates a `pending_approval` task: status `active`, deadline `expiresAt`, its TTL lease and
   * its Idempotency-Key record (if any) moved to that deadline, in one transaction, so the key
   * names the same task for the task's whole life. `undefined` when it was not pending.
   */
  activate(
    task: Pick<Task, "taskId" | "agent" | "idempotencyKey">,
    expiresAt: string,
  ): Promise<Task | undefined>;
}
