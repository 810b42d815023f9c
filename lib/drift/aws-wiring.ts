import { Logger } from "@aws-lambda-powertools/logger";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { SFNClient } from "@aws-sdk/client-sfn";
import { documentClient } from "../app/aws-wiring.js";
import { LoggerAuditLog } from "../audit/logger-audit-log.js";
import { ENV, requireEnv } from "../config.js";
import { CachedTemplateStore } from "../tasks/cached-template-store.js";
import { DynamoTaskRepository } from "../tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../tasks/dynamo-template-store.js";
import { SfnTaskTokenSender } from "../tasks/sfn-lifecycle.js";
import { DriftDetector } from "./detector.js";
import { DynamoDriftCounters } from "./dynamo-counters.js";
import { EventBridgeDriftNotifier } from "./eventbridge-notifier.js";

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
    tokens: new SfnTaskTokenSender({ client: new SFNClient({}) }),
    notifier: new EventBridgeDriftNotifier({
      client: new EventBridgeClient({}),
      ...(eventBusName ? { eventBusName } : {}),
    }),
    audit: new LoggerAuditLog(new Logger({ serviceName: service })),
  });
}
