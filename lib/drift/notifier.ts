import type { Task } from "../domain/task.js";
import { taskEventFields } from "../tasks/notifier.js";
import type { DriftFinding } from "./rules.js";

/** Port: tells the security team a task drifted (EventBridge in AWS, a log line in the sandbox). */
export interface DriftNotifier {
  driftDetected(task: Task, finding: DriftFinding, outcome: DriftOutcome): Promise<void>;
}

/** What the detector did about a finding. */
export type DriftOutcome = "revoked" | "audited";

/** The event's detail: which task, which rule, the evidence. */
export function driftDetail(task: Task, finding: DriftFinding, outcome: DriftOutcome) {
  return {
    ...taskEventFields(task),
    rule: finding.rule,
    detail: finding.detail,
    outcome,
    eventIds: finding.eventIds,
    actions: finding.actions,
  };
}
