import { lifecycleStepHandler } from "../lib/app/aws-wiring.js";

/** Lifecycle state `CloseTask`: records that the lifecycle is done with the task. */
export const handler = lifecycleStepHandler("close", "jitv-close-task");
