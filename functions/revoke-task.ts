import { awsRolePolicyWriter } from "../lib/app/aws-adapters.js";
import { lifecycleStepHandler } from "../lib/app/aws-wiring.js";

/** Lifecycle state `Revoke`: ends the task (if still active) and denies its sessions on its role. */
export const handler = lifecycleStepHandler("revoke", "jitv-revoke-task", { writer: awsRolePolicyWriter() });
