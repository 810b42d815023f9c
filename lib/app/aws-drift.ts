import { Logger } from "@aws-lambda-powertools/logger";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { LoggerAuditLog } from "../audit/logger-audit-log.js";
import { ENV, requireEnv } from "../config.js";
import { DriftDetector } from "../drift/detector.js";
import { DynamoDriftCounters } from "../drift/dynamo-counters.js";
import { EventBridgeDriftNotifier } from "../drift/eventbridge-notifier.js";
import { CachedTemplateStore } from "../tasks/cached-template-store.js";
import { DynamoTaskRepository } from "../tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../tasks/dynamo-template-store.js";
import { awsTaskTokenSender } from "./aws-adapters.js";
import { documentClient } from "./aws-wiring.js";

/**
 * The drift detector with its AWS adapters, for `functions/drift.ts`: the table (tasks, templates,
 * drift counters), Step Functions (the revoked task's lifecycle signal) and EventBridge (drift
 * events on `JITV_EVENT_BUS_NAME`, or the default bus). Reads its environment once.
 */
export function awsDriftDetector(service: string): DriftDetector {
  const client = documentClient();
  const tableName = requireEnv(ENV.tableName);
  const eventBusName = process.env[ENV.eventBusName];
  return new DriftDetector({
    tasks: new DynamoTaskRepository({ client, tableName }),
    templates: new CachedTemplateStore(new DynamoTemplateStore({ client, tableName })),
    counters: new DynamoDriftCounters({ client, tableName }),
    tokens: awsTaskTokenSender(),
    notifier: new EventBridgeDriftNotifier({
      client: new EventBridgeClient({}),
      ...(eventBusName ? { eventBusName } : {}),
    }),
    audit: new LoggerAuditLog(new Logger({ serviceName: service })),
  });
}
