import type { Task } from "../domain/task.js";

/** A task the lifecycle should have finished with by now, as the sweeper sees it. */
export type OverdueTask = Pick<Task, "taskId" | "status" | "expiresAt" | "endedAt">;

/**
 * Port: the tasks whose lifecycle is overdue: not closed, and either `overdueAfterSeconds` past
 * their deadline (whatever their status but `failed`/`denied`, which never held credentials), or
 * ended (`completed`, `revoked`, `expired`, `revocation_failed`) `unclosedAfterSeconds` ago. The state machine and
 * the TTL backstop normally leave none; what they missed (a DLQ'd stream batch, a lifecycle
 * that died with its executor) is found here.
 */
export interface OverdueTasks {
  /**
   * Every task not closed whose lifecycle may still have work to do: live ones whatever their
   * deadline, ended ones created within the lookback.
   */
  unclosed(now: Date): Promise<OverdueTask[]>;
  list(input: {
    readonly now: Date;
    readonly overdueAfterSeconds: number;
    readonly unclosedAfterSeconds: number;
  }): Promise<OverdueTask[]>;
}
