import { Logger } from "@aws-lambda-powertools/logger";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import middy from "@middy/core";
import { LoggerAuditLog } from "../audit/logger-audit-log.js";
import { EmfMetrics } from "../audit/metrics.js";
import { ENV, requireEnv } from "../config.js";
import type { RolePolicyWriter } from "../revocation/revocation-store.js";
import type { SecretRotator } from "../secrets/secret-rotator.js";
import type { LIFECYCLE_STATES, TaskTokenSender } from "../tasks/lifecycle.js";
import { composeLifecycle } from "./compose-lifecycle.js";
import type { TaskLifecycle } from "./lifecycle-steps.js";

// Only DynamoDB here: every other AWS client is built by the function that calls it (see
// aws-adapters.ts), so a function's bundle and cold start carry only its own clients.

/** The DynamoDB document client every function uses (undefined attributes dropped). */
export function documentClient(): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true },
  });
}

/** The AWS adapters a lifecycle function calls; a step that needs one it was not given fails. */
export interface LifecycleAdapters {
  /** IAM: the Revoke step and the TTL backstop. */
  readonly writer?: RolePolicyWriter;
  /** Secrets Manager: the RotateSecrets step and the TTL backstop. */
  readonly rotator?: SecretRotator;
  /** Step Functions: the steps that register (and may answer) task tokens. */
  readonly tokens?: TaskTokenSender;
}

/**
 * The lifecycle steps with the given AWS adapters, for the state machine's Lambdas and the TTL
 * stream handler. Each function's IAM role grants only what its own step calls.
 */
export function awsLifecycle(service: string, adapters: LifecycleAdapters = {}): TaskLifecycle {
  const logger = new Logger({ serviceName: service });
  return composeLifecycle({
    doc: documentClient(),
    tableName: requireEnv(ENV.tableName),
    writer: adapters.writer ?? notWired<RolePolicyWriter>(service, "IAM"),
    rotator: adapters.rotator ?? notWired<SecretRotator>(service, "Secrets Manager"),
    tokens: adapters.tokens ?? notWired<TaskTokenSender>(service, "Step Functions"),
    audit: new LoggerAuditLog(logger),
    metrics: new EmfMetrics(),
  });
}

/** An adapter this function was deliberately built without: any call fails, naming it. */
function notWired<T extends object>(service: string, dependency: string): T {
  return new Proxy({} as T, {
    get: (_target, property) =>
      property === "then"
        ? undefined
        : () => Promise.reject(new Error(`${service} is not wired to call ${dependency}`)),
  });
}

type StepName = (typeof LIFECYCLE_STATES)[keyof typeof LIFECYCLE_STATES]["step"];

/**
 * A Lambda handler (middy) running one lifecycle step with the state's `Payload`; used by
 * the thin files in `functions/`, one per state of the ASL.
 */
export function lifecycleStepHandler<S extends StepName>(
  step: S,
  service: string,
  adapters: LifecycleAdapters = {},
) {
  const lifecycle = awsLifecycle(service, adapters);
  return middy(async (event: Parameters<TaskLifecycle[S]>[0]) => {
    await (lifecycle[step] as (input: Parameters<TaskLifecycle[S]>[0]) => Promise<void>)(event);
    return {};
  });
}
