import { Logger } from "@aws-lambda-powertools/logger";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { AuditLog } from "./audit/audit-log.js";
import { LoggerAuditLog } from "./audit/logger-audit-log.js";
import { CedarAuthorizer } from "./authz/cedar-authorizer.js";
import { DynamoPolicyStore } from "./authz/policy-store.js";
import type { CredentialBroker } from "./credentials/broker.js";
import { adminRoutes } from "./http/admin-routes.js";
import { createApi, type RouteEntry } from "./http/api.js";
import type { HttpRequest, HttpResponse } from "./http/types.js";
import { DynamoReplayCache } from "./identity/dynamo-replay-cache.js";
import type { IssuerConfig } from "./identity/issuers.js";
import { TokenVerifier } from "./identity/verifier.js";
import { DynamoApprovalStore } from "./tasks/approvals.js";
import { DynamoTaskRepository } from "./tasks/dynamo-task-repository.js";
import { DynamoTemplateStore } from "./tasks/dynamo-template-store.js";
import { DynamoInventory } from "./tasks/inventory.js";
import type { LifecycleStarter, TaskTokenSender } from "./tasks/lifecycle.js";
import { DynamoVendRateLimiter, type VendRateLimit } from "./tasks/limits.js";
import { type ApprovalNotifier, LoggerNotifier } from "./tasks/notifier.js";
import { TaskService } from "./tasks/task-service.js";

export interface CoreOptions {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  readonly issuers: IssuerConfig;
  readonly broker: CredentialBroker;
  readonly lifecycle: LifecycleStarter;
  readonly tokens: TaskTokenSender;
  /** EventBridge in AWS; a log line in the sandbox. */
  readonly notifier?: ApprovalNotifier;
  /** Per-agent vend rate. @default bursts of 50 vends, refilled at 5 per second */
  readonly vendRate?: VendRateLimit;
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
  /** Cedar policy sets (versioned, validated on write). */
  readonly policies: DynamoPolicyStore;
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
  const policies = new DynamoPolicyStore({ client, tableName, now });
  const inventory = new DynamoInventory({ client, tableName, now });
  // One engine decides every action: the built-in baseline policies, the stored Cedar policy
  // sets, and each template's agents list, compiled.
  const authorizer = new CedarAuthorizer({
    store: policies,
    now,
    onReloadError: (error) =>
      logger.warn("policy reload failed; the last good policies still decide", { error: error.message }),
  });
  const service = new TaskService({
    verifier: new TokenVerifier({ config: options.issuers, now }),
    templates,
    tasks,
    replay: new DynamoReplayCache({ client, tableName, now }),
    authorizer,
    broker: options.broker,
    audit,
    lifecycle: options.lifecycle,
    tokens: options.tokens,
    notifier: options.notifier ?? new LoggerNotifier(logger),
    approvals: new DynamoApprovalStore({ client, tableName }),
    rateLimiter: new DynamoVendRateLimiter({
      client,
      tableName,
      now,
      ...(options.vendRate ?? { capacity: 50, refillPerSecond: 5 }),
    }),
    agents: inventory,
    ...(options.issuers.admins ? { admins: options.issuers.admins } : {}),
    ...(options.issuers.approvers ? { approvers: options.issuers.approvers } : {}),
    now,
  });
  const api = createApi({
    service,
    logger,
    now,
    extraRoutes: [
      ...adminRoutes({
        authenticate: (token) => service.authenticateAny(token),
        isAdmin: (identity) => service.isAdmin(identity),
        scope: (identity, action, requestId) => service.inventoryScope(identity, action, requestId),
        inventory,
      }),
      ...(options.extraRoutes?.({ service, templates }) ?? []),
    ],
  });
  return { service, templates, tasks, policies, api, logger, audit };
}
