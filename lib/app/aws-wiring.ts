import { Logger } from "@aws-lambda-powertools/logger";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { IAMClient } from "@aws-sdk/client-iam";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SFNClient } from "@aws-sdk/client-sfn";
import { STSClient } from "@aws-sdk/client-sts";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import middy from "@middy/core";
import { LoggerAuditLog } from "../audit/logger-audit-log.js";
import { EmfMetrics } from "../audit/metrics.js";
import { ENV, requireEnv, targetAccountsFromEnv } from "../config.js";
import { IamRolePolicyWriter } from "../revocation/iam-role-policy-writer.js";
import { RevokerIamClients } from "../revocation/revoker-clients.js";
import { SecretsManagerRotator } from "../secrets/secrets-manager-rotator.js";
import type { LIFECYCLE_STATES } from "../tasks/lifecycle.js";
import { SfnTaskTokenSender } from "../tasks/sfn-lifecycle.js";
import { composeLifecycle } from "./compose-lifecycle.js";
import type { TaskLifecycle } from "./lifecycle-steps.js";

/** The DynamoDB document client every function uses (undefined attributes dropped). */
export function documentClient(): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true },
  });
}

/**
 * The lifecycle steps with their AWS adapters, for the state machine's Lambdas and the TTL
 * stream handler. Each function's IAM role grants only what its own step calls.
 */
export function awsLifecycle(service: string) {
  const logger = new Logger({ serviceName: service });
  return composeLifecycle({
    doc: documentClient(),
    tableName: requireEnv(ENV.tableName),
    writer: new IamRolePolicyWriter({ client: iamClients() }),
    rotator: new SecretsManagerRotator({ client: new SecretsManagerClient({ maxAttempts: 1 }) }),
    tokens: new SfnTaskTokenSender({ client: new SFNClient({}) }),
    audit: new LoggerAuditLog(logger),
    metrics: new EmfMetrics(),
  });
}

/**
 * The IAM client(s) revocation writes with: the function's own for the vending account's roles;
 * with other target accounts configured, each account's revoker role for its roles (by ARN).
 */
function iamClients(): IAMClient | ((roleArn: string) => IAMClient) {
  const home = new IAMClient({ maxAttempts: 1 });
  const accounts = targetAccountsFromEnv();
  const homeAccount = process.env[ENV.accountId];
  if (!accounts || !homeAccount || accounts.every((account) => account === homeAccount)) return home;
  return new RevokerIamClients({ homeAccount, home, sts: new STSClient({}) }).forRole;
}

type Steps = TaskLifecycle;
type StepName = (typeof LIFECYCLE_STATES)[keyof typeof LIFECYCLE_STATES]["step"];

/**
 * A Lambda handler (middy) running one lifecycle step with the state's `Payload`; used by
 * the thin files in `functions/`, one per state of the ASL.
 */
export function lifecycleStepHandler<S extends StepName>(step: S, service: string) {
  const lifecycle = awsLifecycle(service);
  return middy(async (event: Parameters<Steps[S]>[0]) => {
    await (lifecycle[step] as (input: Parameters<Steps[S]>[0]) => Promise<void>)(event);
    return {};
  });
}
