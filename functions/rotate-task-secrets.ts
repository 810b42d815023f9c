import { awsSecretRotator } from "../lib/app/aws-adapters.js";
import { lifecycleStepHandler } from "../lib/app/aws-wiring.js";

/** Lifecycle state `RotateSecrets`: rotates the template's rotateOnEnd secrets. */
export const handler = lifecycleStepHandler("rotateSecrets", "jitv-rotate-task-secrets", {
  rotator: awsSecretRotator(),
});
