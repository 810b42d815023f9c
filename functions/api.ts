import { Logger } from "@aws-lambda-powertools/logger";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { SFNClient } from "@aws-sdk/client-sfn";
import { STSClient } from "@aws-sdk/client-sts";
import middy from "@middy/core";
import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { documentClient } from "../lib/app/aws-wiring.js";
import { EmfMetrics } from "../lib/audit/metrics.js";
import { ENV, requireEnv, targetAccountsFromEnv } from "../lib/config.js";
import { StsBroker } from "../lib/credentials/sts-broker.js";
import { composeApi } from "../lib/http/compose-api.js";
import { contractErrorMiddleware, fromApiGatewayEvent, toApiGatewayResult } from "../lib/http/lambda.js";
import { loadIssuerConfigFile } from "../lib/identity/issuers.js";
import { EventBridgeNotifier } from "../lib/tasks/eventbridge-notifier.js";
import { SfnLifecycleStarter, SfnTaskTokenSender } from "../lib/tasks/sfn-lifecycle.js";

// Built once per cold start; a bad configuration fails here, naming the problem.
const sfn = new SFNClient({});
const metrics = new EmfMetrics();
const eventBusName = process.env[ENV.eventBusName];
const { api } = composeApi({
  doc: documentClient(),
  tableName: requireEnv(ENV.tableName),
  issuers: loadIssuerConfigFile(requireEnv(ENV.issuersFile)),
  // Only into accounts where revocation reaches (the target-account stack's revoker role).
  targetAccounts: targetAccountsFromEnv(),
  // The broker retries throttling itself, with jitter; the SDK's own retries are off.
  broker: new StsBroker({
    client: new STSClient({ maxAttempts: 1 }),
    onRetry: () => metrics.count("StsThrottled"),
  }),
  lifecycle: new SfnLifecycleStarter({ client: sfn, stateMachineArn: requireEnv(ENV.stateMachineArn) }),
  tokens: new SfnTaskTokenSender({ client: sfn }),
  notifier: new EventBridgeNotifier({
    client: new EventBridgeClient({}),
    ...(eventBusName ? { eventBusName } : {}),
  }),
  logger: new Logger({ serviceName: "jitv-api" }),
});

async function core(event: APIGatewayProxyEvent, context: Context) {
  return toApiGatewayResult(await api(fromApiGatewayEvent(event, context)));
}

/** The jitv HTTP API (`/v1/tasks…`, `/healthz`) behind API Gateway. */
export const handler = middy(core).use(contractErrorMiddleware());
