import { fileURLToPath } from "node:url";
import type { Task, TaskOutcome } from "../domain/task.js";

/**
 * The lifecycle definition, shared by the CDK stack and the sandbox: one file, run by Step
 * Functions in AWS and by aws-local-stepfunctions in the sandbox.
 */
export const LIFECYCLE_ASL_PATH = fileURLToPath(
  new URL("../../infra/state-machines/task-lifecycle.asl.json", import.meta.url),
);

/**
 * Port: starts the lifecycle execution of a task (execution name = task id, so a second
 * start of the same task is a no-op). Step Functions in AWS; the same ASL run in-process
 * in the sandbox.
 */
export interface LifecycleStarter {
  start(task: Pick<Task, "taskId" | "expiresAt" | "status">): Promise<void>;
}

/** What a waiting state is told: how the task ended, or the approval decision. */
export type LifecycleSignal =
  | { readonly outcome: TaskOutcome }
  | { readonly decision: "approved"; readonly timeoutSeconds: number }
  | { readonly decision: "denied" };

/** Port: hands a signal back to a waiting lifecycle execution (`SendTaskSuccess`). */
export interface TaskTokenSender {
  sendSuccess(taskToken: string, output: LifecycleSignal): Promise<void>;
}

/**
 * Tells an ended task's waiting execution how it ended; false when that failed (after the
 * client's own retries). Without a token yet there is nothing to tell: the execution's
 * registration sees the ended task and moves on itself. A failure is not thrown: the task has
 * ended either way, and the backstop sweep finishes what its lifecycle does not (revocation
 * within `SWEEP_DEFAULTS.unclosedAfterSeconds` plus the sweep's period).
 */
export async function signalTaskEnded(
  tokens: TaskTokenSender,
  task: Pick<Task, "taskToken">,
  outcome: TaskOutcome,
): Promise<boolean> {
  if (!task.taskToken) return true;
  return tokens.sendSuccess(task.taskToken, { outcome }).then(
    () => true,
    () => false,
  );
}

/**
 * The Lambda-backed states of `infra/state-machines/task-lifecycle.asl.json`: the ASL
 * substitution naming each state's function, and the {@link TaskLifecycle} step it runs.
 * The CDK stack substitutes the functions' ARNs; the sandbox maps each state to the step.
 */
export const LIFECYCLE_STATES = {
  WaitForApproval: { substitution: "RegisterApprovalTokenFunctionArn", step: "registerApprovalToken" },
  ApprovalRefused: { substitution: "ApprovalRefusedFunctionArn", step: "approvalRefused" },
  WaitForTaskEnd: { substitution: "RegisterTaskTokenFunctionArn", step: "registerToken" },
  Revoke: { substitution: "RevokeTaskFunctionArn", step: "revoke" },
  RotateSecrets: { substitution: "RotateTaskSecretsFunctionArn", step: "rotateSecrets" },
  CloseTask: { substitution: "CloseTaskFunctionArn", step: "close" },
  LifecycleFailed: { substitution: "LifecycleFailedFunctionArn", step: "lifecycleFailed" },
} as const;

/** The execution input of the lifecycle state machine. */
export interface LifecycleInput {
  readonly taskId: string;
  /** Seconds until the task's deadline (at least 1); for a pending task, its approval deadline. */
  readonly timeoutSeconds: number;
  readonly approvalRequired: boolean;
  /** Seconds left to approve (at least 1; unused when no approval is required). */
  readonly approvalTimeoutSeconds: number;
}

/** Whole seconds from `now` until `time`, at least 1 (Step Functions timeouts are positive integers). */
export function secondsUntil(time: string, now: Date): number {
  return Math.max(1, Math.ceil((Date.parse(time) - now.getTime()) / 1000));
}

export function lifecycleInput(
  task: Pick<Task, "taskId" | "expiresAt" | "status">,
  now: Date,
): LifecycleInput {
  const remaining = secondsUntil(task.expiresAt, now);
  return {
    taskId: task.taskId,
    timeoutSeconds: remaining,
    approvalRequired: task.status === "pending_approval",
    approvalTimeoutSeconds: remaining,
  };
}
