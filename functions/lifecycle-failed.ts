import { lifecycleStepHandler } from "../lib/app/aws-wiring.js";

/** Lifecycle state `LifecycleFailed`: marks the task revocation_failed, audits it and counts a metric. */
export const handler = lifecycleStepHandler("lifecycleFailed", "jitv-lifecycle-failed");
