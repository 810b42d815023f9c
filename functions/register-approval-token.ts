import { awsTaskTokenSender } from "../lib/app/aws-adapters.js";
import { lifecycleStepHandler } from "../lib/app/aws-wiring.js";

/** Lifecycle state `WaitForApproval`: stores the approval token on the task (answering at once if the decision came first). */
export const handler = lifecycleStepHandler("registerApprovalToken", "jitv-register-approval-token", {
  tokens: awsTaskTokenSender(),
});
