import type { Task } from "../domain/task.js";

/** Port: tells approvers a task is waiting for them. */
export interface ApprovalNotifier {
  pendingApproval(task: Task, quorum: number): Promise<void>;
}

/** Which task an event is about: its id, template, zone, agent and whom it acts for. Never tokens or policies. */
export function taskEventFields(task: Task) {
  return {
    taskId: task.taskId,
    template: task.template,
    zone: task.zone,
    agent: task.agent,
    ...(task.onBehalfOf
      ? { onBehalfOf: { user: task.onBehalfOf.user, tenant: task.onBehalfOf.tenant } }
      : {}),
  };
}

/** The event's detail: who asks, for whom, what, until when. */
export function pendingApprovalDetail(task: Task, quorum: number) {
  return {
    ...taskEventFields(task),
    ...(task.purpose === undefined ? {} : { purpose: task.purpose }),
    approvalsRequired: quorum,
    decideBy: task.expiresAt,
  };
}
