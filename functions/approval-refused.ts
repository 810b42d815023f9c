import { lifecycleStepHandler } from "../lib/app/aws-wiring.js";

/** Lifecycle state `ApprovalRefused`: marks the task denied when approval was refused or timed out. */
export const handler = lifecycleStepHandler("approvalRefused", "jitv-approval-refused");
