import { Logger } from "@aws-lambda-powertools/logger";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { AuditLog } from "./audit/audit-log.js";
import { LoggerAuditLog } from "./audit/logger-audit-log.js";
import type { Metrics } from "./audit/metrics.js";
import { TemplateAllowListAuthorizer } from "./authz/template-allow-list.js";
import type { CredentialBroker } from "./credentials/broker.js";
import { createApi, type RouteEntry } from "./http/api.js";
import type { HttpRequest, HttpResponse } from "./http/types.js";
import { DynamoReplayCache } from "./identity/dynamo-replay-cache.js";
import type { IssuerConfig } from "./identity/issuers.js";
import { TokenVerifier } from "./identity/verifier.js";
import { DynamoRevocationStore } from "./revocation/dynamo-revocation-store.js";
import type { RolePolicyWriter } from "./revocation/revocation-store.js";
import type { SecretRotator } from "./secrets/secret-rotator.js";
import { DynamoTaskRepository } from "./tasks/dynamo-task-repository.js";
import { DynamoTemplateStore } from "./tasks/dynamo-template-store.js";
import { type LifecycleStarter, TaskLifecycle, type TaskTokenSender } from "./tasks/lifecycle.js";
import { TaskService } from "./tasks/task-service.js";

export interface CoreOptions {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  readonly issuers: IssuerConfig;
  readonly broker: CredentialBroker;
  readonly lifecycle: LifecycleStarter;
  readonly tokens: TaskTokenSender;
  readonly logger?: Logger;
  readonly audit?: AuditLog;
  /** Extra routes built from the composed parts (the sandbox's `/v1/sandbox/*`). */
  readonly extraRoutes?: (parts: {
    service: TaskService;
    templates: DynamoTemplateStore;
  }) => readonly RouteEntry[];
  readonly now?: () => Date;
}

export interface Core {
  readonly service: TaskService;
  readonly templates: DynamoTemplateStore;
  readonly tasks: DynamoTaskRepository;
  readonly api: (req: HttpRequest) => Promise<HttpResponse>;
  readonly logger: Logger;
  readonly audit: AuditLog;
}

/**
 * Wires the one API core from its adapters. The Lambdas and the sandbox both call this; they
 * differ only in the clients, the broker (STS vs. sandbox) and the lifecycle (Step Functions
 * vs. the same ASL run in-process).
 */
export function composeCore(options: CoreOptions): Core {
  const logger = options.logger ?? new Logger({ serviceName: "jitv" });
  const now = options.now ?? (() => new Date());
  const client = options.doc;
  const { tableName } = options;
  const audit = options.audit ?? new LoggerAuditLog(logger);
  const tasks = new DynamoTaskRepository({ client, tableName, now });
  const templates = new DynamoTemplateStore({ client, tableName });
  const service = new TaskService({
    verifier: new TokenVerifier({ config: options.issuers, now }),
    templates,
    tasks,
    replay: new DynamoReplayCache({ client, tableName, now }),
    authorizer: new TemplateAllowListAuthorizer(),
    broker: options.broker,
    audit,
    lifecycle: options.lifecycle,
    tokens: options.tokens,
    ...(options.issuers.admins ? { admins: options.issuers.admins } : {}),
    now,
  });
  const api = createApi({
    service,
    logger,
    now,
    ...(options.extraRoutes ? { extraRoutes: options.extraRoutes({ service, templates }) } : {}),
  });
  return { service, templates, tasks, api, logger, audit };
}

export interface LifecycleOptions {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  /** IAM in AWS; the sandbox's DynamoDB projection locally. */
  readonly writer: RolePolicyWriter;
  readonly rotator: SecretRotator;
  readonly tokens: TaskTokenSender;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  readonly now?: () => Date;
}

/** Wires the lifecycle steps (state machine Lambdas, TTL backstop, sandbox). */
export function composeLifecycle(options: LifecycleOptions): TaskLifecycle {
  const now = options.now ?? (() => new Date());
  const client = options.doc;
  const { tableName, audit, metrics } = options;
  const revocations = new DynamoRevocationStore({
    client,
    tableName,
    writer: options.writer,
    now,
    onFallback: (roleArn, cutoff) => {
      metrics.count("RevocationFallback");
      audit.record({ event: "revocation.fallback", roleArn, cutoff });
    },
  });
  return new TaskLifecycle({
    tasks: new DynamoTaskRepository({ client, tableName, now }),
    templates: new DynamoTemplateStore({ client, tableName }),
    revocations,
    rotator: options.rotator,
    tokens: options.tokens,
    audit,
    metrics,
    now,
  });
}
