import { awsTaskTokenSender } from "../lib/app/aws-adapters.js";
import { lifecycleStepHandler } from "../lib/app/aws-wiring.js";

/** Lifecycle state `WaitForTaskEnd`: stores the execution's task token on the task (answering at once if the task already ended). */
export const handler = lifecycleStepHandler("registerToken", "jitv-register-task-token", {
  tokens: awsTaskTokenSender(),
});
