import type { DeniedCall } from "./rules.js";

/**
 * Port: the drift detector's state, shared by every concurrent invocation (DynamoDB in AWS and in
 * the sandbox; nothing is kept in memory between Lambdas). Every entry expires on its own.
 */
export interface DriftCounters {
  /**
   * Records that the detector handles the CloudTrail event `eventId` until `until`.
   * @returns false when it was already recorded: a redelivery, to be skipped
   */
  markSeen(eventId: string, until: Date): Promise<boolean>;
  /** Forgets a {@link markSeen} whose handling failed, so a redelivery is handled again. */
  forgetSeen(eventId: string): Promise<void>;
  /**
   * Records one AccessDenied call of a task (kept until `until`; recording it twice changes
   * nothing) and returns the task's recorded AccessDenied calls from `from` to `to` (ISO times,
   * inclusive), this one included.
   */
  recordDenied(
    taskId: string,
    call: DeniedCall,
    window: { readonly from: string; readonly to: string },
    until: Date,
  ): Promise<DeniedCall[]>;
}
