import { Logger } from "@aws-lambda-powertools/logger";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import middy from "@middy/core";
import { parseRotationEvent, RandomSecretRotation } from "../lib/secrets/rotation-steps.js";

// Built once per cold start. The SDK retries throttling; Secrets Manager retries a failed step.
const logger = new Logger({ serviceName: "jitv" });
const rotation = new RandomSecretRotation({ client: new SecretsManagerClient({}) });

async function core(rawEvent: unknown): Promise<void> {
  const event = parseRotationEvent(rawEvent);
  // Only these three: never the event as a whole (RotationToken) nor anything read from the secret.
  const keys = { step: event.Step, secretArn: event.SecretId, token: event.ClientRequestToken };
  try {
    const outcome = await rotation.handle(event);
    logger.info("rotation step done", { ...keys, outcome });
  } catch (error) {
    logger.error("rotation step failed", { ...keys, error: error instanceof Error ? error.name : "unknown" });
    throw error;
  }
}

/**
 * The rotation Lambda of generic random secrets (Secrets Manager's four-step protocol; see
 * `RandomSecretRotation`). Configure it as a secret's rotation function; jitv's
 * `SecretsManagerRotator` triggers it when a task that could read the secret ends.
 */
export const handler = middy(core).use(injectLambdaContext(logger));
