import { Logger } from "@aws-lambda-powertools/logger";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { STSClient } from "@aws-sdk/client-sts";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import middy from "@middy/core";
import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { composeCore } from "../lib/compose.js";
import { readLambdaConfig } from "../lib/config.js";
import { StsBroker } from "../lib/credentials/sts-broker.js";
import { contractErrorMiddleware, fromApiGatewayEvent, toApiGatewayResult } from "../lib/http/lambda.js";
import { loadIssuerConfigFile } from "../lib/identity/issuers.js";

// Built once per cold start; a bad configuration fails here, naming the problem.
const config = readLambdaConfig();
const logger = new Logger({ serviceName: "jitv" });
const { api } = composeCore({
  doc: DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true },
  }),
  tableName: config.tableName,
  issuers: loadIssuerConfigFile(config.issuersFile),
  // The broker retries throttling itself, with jitter; the SDK's own retries are off.
  broker: new StsBroker({ client: new STSClient({ maxAttempts: 1 }) }),
  logger,
});

async function core(event: APIGatewayProxyEvent, context: Context) {
  return toApiGatewayResult(await api(fromApiGatewayEvent(event, context)));
}

/** The jitv HTTP API (`/v1/tasks`, `/v1/tasks/{id}`, `/healthz`) behind API Gateway. */
export const handler = middy(core).use(contractErrorMiddleware());
