import { Logger } from "@aws-lambda-powertools/logger";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { AuditLog } from "../audit/audit-log.js";
import { LoggerAuditLog } from "../audit/logger-audit-log.js";
import { CedarAuthorizer } from "../authz/cedar-authorizer.js";
import { DynamoPolicyStore } from "../authz/dynamo-policy-store.js";
import { StaffRoles } from "../authz/roles.js";
import type { CredentialBroker } from "../credentials/broker.js";
import type { TargetAccounts } from "../domain/accounts.js";
import type { IssuerConfig } from "../identity/issuers.js";
import { TokenVerifier } from "../identity/verifier.js";
import { CachedTemplateStore } from "../tasks/cached-template-store.js";
import { DynamoApprovalStore } from "../tasks/dynamo-approval-store.js";
import { DynamoInventory } from "../tasks/dynamo-inventory.js";
import { DynamoVendRateLimiter } from "../tasks/dynamo-rate-limiter.js";
import { DynamoTaskRepository } from "../tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../tasks/dynamo-template-store.js";
import type { LifecycleStarter, TaskTokenSender } from "../tasks/lifecycle.js";
import type { VendRateLimit } from "../tasks/limits.js";
import { LoggerNotifier } from "../tasks/logger-notifier.js";
import type { ApprovalNotifier } from "../tasks/notifier.js";
import type { TemplateStore } from "../tasks/template-store.js";
import { AccessControl } from "./access.js";
import { ApprovalService } from "./approval-service.js";
import { TaskService } from "./task-service.js";

export interface CoreOptions {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  readonly issuers: IssuerConfig;
  readonly broker: CredentialBroker;
  readonly lifecycle: LifecycleStarter;
  readonly tokens: TaskTokenSender;
  /** EventBridge in AWS; a log line in the sandbox. */
  readonly notifier?: ApprovalNotifier;
  /**
   * The accounts jitv may vend into and revoke in: templates whose role is elsewhere are refused
   * at `put` and at vend. @default undefined (not checked)
   */
  readonly targetAccounts?: TargetAccounts;
  /** Per-agent vend (and refresh) rate. @default `DEFAULT_VEND_RATE` */
  readonly vendRate?: VendRateLimit;
  readonly logger?: Logger;
  readonly audit?: AuditLog;
  readonly now?: () => Date;
}

export interface Core {
  readonly service: TaskService;
  readonly approvals: ApprovalService;
  /** Templates, read through a short-lived cache (its own writes take effect at once). */
  readonly templates: TemplateStore;
  readonly tasks: DynamoTaskRepository;
  /** Cedar policy sets (versioned, validated on write). */
  readonly policies: DynamoPolicyStore;
  /** The admin inventory behind `GET /v1/tasks` and `GET /v1/agents`. */
  readonly inventory: DynamoInventory;
  /** Who is an admin or approver, and how far each reaches. */
  readonly roles: StaffRoles;
  readonly logger: Logger;
  readonly audit: AuditLog;
}

/**
 * Wires the services of the one API core from its adapters. The Lambdas and the sandbox both call this; they
 * differ only in the clients, the broker (STS vs. sandbox) and the lifecycle (Step Functions
 * vs. the same ASL run in-process).
 */
export function composeCore(options: CoreOptions): Core {
  const logger = options.logger ?? new Logger({ serviceName: "jitv" });
  const now = options.now ?? (() => new Date());
  const client = options.doc;
  const { tableName } = options;
  const audit = options.audit ?? new LoggerAuditLog(logger);
  // A vend's rate token is taken inside its task transaction, from the same bucket as the limiter's.
  const tasks = new DynamoTaskRepository({ client, tableName, now, vendRate: options.vendRate });
  const { targetAccounts } = options;
  const templates = new CachedTemplateStore(new DynamoTemplateStore({ client, tableName, targetAccounts }));
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
  const roles = new StaffRoles(options.issuers.admins, options.issuers.approvers);
  const access = new AccessControl({ authorizer, roles, audit });
  const service = new TaskService({
    verifier: new TokenVerifier({ config: options.issuers, now }),
    templates,
    tasks,
    authorizer,
    broker: options.broker,
    audit,
    lifecycle: options.lifecycle,
    tokens: options.tokens,
    notifier: options.notifier ?? new LoggerNotifier(logger),
    roles,
    access,
    rateLimiter: new DynamoVendRateLimiter({
      client,
      tableName,
      now,
      ...options.vendRate,
    }),
    agents: inventory,
    targetAccounts,
    now,
  });
  const approvals = new ApprovalService({
    tasks,
    templates,
    approvals: new DynamoApprovalStore({ client, tableName }),
    tokens: options.tokens,
    roles,
    access,
    audit,
    now,
  });
  return { service, approvals, templates, tasks, policies, inventory, roles, logger, audit };
}
