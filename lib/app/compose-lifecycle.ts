import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { AuditLog } from "../audit/audit-log.js";
import type { Metrics } from "../audit/metrics.js";
import { DynamoRevocationStore } from "../revocation/dynamo-revocation-store.js";
import type { RolePolicyWriter } from "../revocation/revocation-store.js";
import type { SecretRotator } from "../secrets/secret-rotator.js";
import { DynamoTaskRepository } from "../tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../tasks/dynamo-template-store.js";
import type { TaskTokenSender } from "../tasks/lifecycle.js";
import { TaskLifecycle } from "./lifecycle-steps.js";

// Kept apart from compose.ts so the lifecycle Lambdas never load the API's dependencies (Cedar).

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
    // A deleted role denies every session already: the revocation is complete, and said so.
    onRoleMissing: (roleArn) => audit.record({ event: "revocation.role_missing", roleArn }),
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
