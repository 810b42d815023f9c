import { Logger } from "@aws-lambda-powertools/logger";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { AuditLog } from "./audit/audit-log.js";
import { LoggerAuditLog } from "./audit/logger-audit-log.js";
import { TemplateAllowListAuthorizer } from "./authz/template-allow-list.js";
import type { CredentialBroker } from "./credentials/broker.js";
import { createApi, type RouteEntry } from "./http/api.js";
import type { HttpRequest, HttpResponse } from "./http/types.js";
import { DynamoReplayCache } from "./identity/dynamo-replay-cache.js";
import type { IssuerConfig } from "./identity/issuers.js";
import { TokenVerifier } from "./identity/verifier.js";
import { DynamoTaskRepository } from "./tasks/dynamo-task-repository.js";
import { DynamoTemplateStore } from "./tasks/dynamo-template-store.js";
import { TaskService } from "./tasks/task-service.js";

export interface CoreOptions {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  readonly issuers: IssuerConfig;
  readonly broker: CredentialBroker;
  readonly logger?: Logger;
  readonly audit?: AuditLog;
  readonly extraRoutes?: readonly RouteEntry[];
  readonly now?: () => Date;
}

export interface Core {
  readonly service: TaskService;
  readonly templates: DynamoTemplateStore;
  readonly tasks: DynamoTaskRepository;
  readonly api: (req: HttpRequest) => Promise<HttpResponse>;
  readonly logger: Logger;
}

/**
 * Wires the one core from its adapters. The Lambdas and the sandbox both call this; they
 * differ only in the clients and the broker they pass (STS vs. sandbox).
 */
export function composeCore(options: CoreOptions): Core {
  const logger = options.logger ?? new Logger({ serviceName: "jitv" });
  const now = options.now ?? (() => new Date());
  const client = options.doc;
  const { tableName } = options;
  const tasks = new DynamoTaskRepository({ client, tableName, now });
  const templates = new DynamoTemplateStore({ client, tableName });
  const service = new TaskService({
    verifier: new TokenVerifier({ config: options.issuers, now }),
    templates,
    tasks,
    replay: new DynamoReplayCache({ client, tableName, now }),
    authorizer: new TemplateAllowListAuthorizer(),
    broker: options.broker,
    audit: options.audit ?? new LoggerAuditLog(logger),
    ...(options.issuers.admins ? { admins: options.issuers.admins } : {}),
    now,
  });
  const api = createApi({
    service,
    logger,
    now,
    ...(options.extraRoutes ? { extraRoutes: options.extraRoutes } : {}),
  });
  return { service, templates, tasks, api, logger };
}
