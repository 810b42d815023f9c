import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  type DynamoDBClient,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import type { Task } from "../domain/task.js";

/**
 * The single-table design of jitv, shared by the DynamoDB adapters, the sandbox, the tests and
 * the CDK stack. Every item has `pk`/`sk` and a `type`:
 *
 * | type          | pk                                   | sk         | gsi1pk                   | gsi1sk                  |
 * | ------------- | ------------------------------------ | ---------- | ------------------------ | ----------------------- |
 * | `task`        | `TASK#<taskId>`                      | `TASK`     | `AGENT#<issuer>#<agent>` | `<createdAt>#<taskId>`  |
 * | `lease`       | `LEASE#<taskId>`                     | `LEASE`    |                          |                         |
 * | `idempotency` | `IDEM#<issuer>#<agent>#<key>`        | `IDEM`     |                          |                         |
 * | `replay`      | `JTI#<issuer>#<jti>`                 | `JTI`      |                          |                         |
 * | `template`    | `TEMPLATE#<name>`                    | `TEMPLATE` | `TEMPLATES`              | `<name>`                |
 * | `revocation`  | `ROLE#<roleArn>`                     | `REVOKED#<taskId>` |                  |                         |
 * | `lease`       | `PRUNE#<roleArn>#<taskId>`           | `LEASE`    | (own `pk`)               | (own `sk`)              |
 * | `lock`        | `ROLE#<roleArn>`                     | `LOCK`     |                          |                         |
 * | `role`        | `ROLE#<roleArn>`                     | `META`     |                          |                         |
 * | `sandbox-role-policy` | `SANDBOXROLE#<roleArn>`      | `POLICY#<name>` |                     |                         |
 *
 * Revocation (CONTRACT.md section 6) keeps one `revocation` entry per revoked task per target
 * role, the source of truth projected into the role's inline deny policy. Entries have no TTL:
 * a prune lease (`leaseKind: "prune"`, expiring 5 minutes after the task's last credential)
 * removes them through the TTL stream. The role's `lock` serialises projections (IAM has no
 * conditional write); it has no TTL either, it is taken over once `lockExpiresAt` (epoch ms)
 * has passed. The role's `role` item holds the size fallback's `cutoff`. The sandbox keeps the
 * inline policies it would have put on IAM as `sandbox-role-policy` items.
 *
 * Every variable component is `encodeURIComponent`-encoded, so a `#` inside an issuer, agent id,
 * key or jti cannot make one key collide with another. Leases, idempotency and replay records
 * carry `ttlEpoch` (epoch seconds); DynamoDB TTL deletes them and the stream's `REMOVE` record of
 * an expired lease is the revocation backstop.
 *
 * Items that expire also carry `gsi1pk`/`gsi1sk`, set to their own `pk`/`sk` (see
 * {@link selfIndexKeys}): DynamoDB Local's TTL job builds the key of an expired item from every
 * attribute in `AttributeDefinitions`, fails to delete an item that lacks a GSI key attribute, and
 * then stalls on it, so no other item of the table expires either. Each such item is its own
 * index partition, so this costs one index write per item and creates no hot key.
 */

/** Name of the TTL attribute (epoch seconds). */
export const TTL_ATTRIBUTE = "ttlEpoch";
/** Name of the one global secondary index. */
export const GSI1 = "gsi1";
/** `gsi1pk` shared by all templates, so listing them is a query, never a scan. */
export const TEMPLATES_GSI1PK = "TEMPLATES";
/** Attributes that make up the table's keys and indexes; adapters strip them from what they return. */
export const KEY_ATTRIBUTES = ["pk", "sk", "type", "gsi1pk", "gsi1sk"] as const;

/** The `type` attribute of each item kind. */
export type ItemType =
  | "task"
  | "lease"
  | "idempotency"
  | "replay"
  | "template"
  | "revocation"
  | "lock"
  | "role"
  | "sandbox-role-policy";

/** Primary key of an item. */
export interface ItemKey {
  readonly pk: string;
  readonly sk: string;
}

const enc = encodeURIComponent;

/** Key of a task record. */
export function taskKey(taskId: string): ItemKey {
  return { pk: `TASK#${enc(taskId)}`, sk: "TASK" };
}

/** Key of a task's TTL lease. */
export function leaseKey(taskId: string): ItemKey {
  return { pk: `LEASE#${enc(taskId)}`, sk: "LEASE" };
}

/** Key of an agent's Idempotency-Key record. Scoped per issuer and agent: agents cannot collide. */
export function idempotencyKey(issuer: string, agentId: string, key: string): ItemKey {
  return { pk: `IDEM#${enc(issuer)}#${enc(agentId)}#${enc(key)}`, sk: "IDEM" };
}

/** Key of a used token id (replay cache). */
export function replayKey(issuer: string, jti: string): ItemKey {
  return { pk: `JTI#${enc(issuer)}#${enc(jti)}`, sk: "JTI" };
}

/** Key of a task template. */
export function templateKey(name: string): ItemKey {
  return { pk: `TEMPLATE#${enc(name)}`, sk: "TEMPLATE" };
}

/** `pk` shared by a target role's revocation entries, lock and meta item. */
export function rolePk(roleArn: string): string {
  return `ROLE#${enc(roleArn)}`;
}

/** `sk` prefix of revocation entries: query `begins_with(sk, REVOKED_SK_PREFIX)` under {@link rolePk}. */
export const REVOKED_SK_PREFIX = "REVOKED#";

/** Key of a task's revocation entry on a target role. */
export function revocationKey(roleArn: string, taskId: string): ItemKey {
  return { pk: rolePk(roleArn), sk: `${REVOKED_SK_PREFIX}${enc(taskId)}` };
}

/** Key of the lease that prunes a revocation entry once the task's credentials have expired. */
export function pruneLeaseKey(roleArn: string, taskId: string): ItemKey {
  return { pk: `PRUNE#${enc(roleArn)}#${enc(taskId)}`, sk: "LEASE" };
}

/** Key of the lock that serialises projections of a role's revocation policy. */
export function roleLockKey(roleArn: string): ItemKey {
  return { pk: rolePk(roleArn), sk: "LOCK" };
}

/** Key of a target role's meta item (the revocation size fallback's cutoff). */
export function roleMetaKey(roleArn: string): ItemKey {
  return { pk: rolePk(roleArn), sk: "META" };
}

/** Key of an inline policy of a role as the sandbox keeps it. */
export function sandboxRolePolicyKey(roleArn: string, policyName: string): ItemKey {
  return { pk: `SANDBOXROLE#${enc(roleArn)}`, sk: `POLICY#${enc(policyName)}` };
}

/** `gsi1pk` of an agent's tasks: query it to list one agent's tasks in creation order. */
export function agentTasksGsi1pk(issuer: string, agentId: string): string {
  return `AGENT#${enc(issuer)}#${enc(agentId)}`;
}

/**
 * Converts an RFC 3339 time to epoch seconds, rounded up so a TTL never fires before the time.
 * @throws Error when the time does not parse
 */
export function toEpochSeconds(time: string): number {
  const ms = Date.parse(time);
  if (Number.isNaN(ms)) throw new Error("not an RFC 3339 time");
  return Math.ceil(ms / 1000);
}

/**
 * `gsi1pk`/`gsi1sk` for an item that expires: the item's own key. Needed so DynamoDB Local's TTL
 * job can delete it (see the module comment); harmless on DynamoDB.
 */
export function selfIndexKeys(key: ItemKey): { gsi1pk: string; gsi1sk: string } {
  return { gsi1pk: key.pk, gsi1sk: key.sk };
}

/** The task record as stored: the task's fields plus keys, `type` and the agent index. */
export function taskItem(task: Task): Record<string, unknown> {
  return {
    ...withoutUndefined(task),
    ...taskKey(task.taskId),
    type: "task" satisfies ItemType,
    gsi1pk: agentTasksGsi1pk(task.agent.issuer, task.agent.id),
    gsi1sk: `${task.createdAt}#${enc(task.taskId)}`,
  };
}

/** A task's TTL lease, expiring at the task's deadline. */
export function leaseItem(taskId: string, expiresAt: string): Record<string, unknown> {
  const key = leaseKey(taskId);
  return {
    ...key,
    ...selfIndexKeys(key),
    type: "lease" satisfies ItemType,
    leaseKind: "task",
    taskId,
    [TTL_ATTRIBUTE]: toEpochSeconds(expiresAt),
  };
}

/** An agent's Idempotency-Key record, pointing at its task and living as long as the task. */
export function idempotencyItem(task: Task & { readonly idempotencyKey: string }): Record<string, unknown> {
  const key = idempotencyKey(task.agent.issuer, task.agent.id, task.idempotencyKey);
  return {
    ...key,
    ...selfIndexKeys(key),
    type: "idempotency" satisfies ItemType,
    taskId: task.taskId,
    [TTL_ATTRIBUTE]: toEpochSeconds(task.expiresAt),
  };
}

/**
 * A used token id, kept until `ttlEpoch`.
 * @param exp the token's `exp` (epoch seconds), kept for audit
 * @param ttlEpoch when the entry stops blocking (epoch seconds)
 */
export function replayItem(
  issuer: string,
  jti: string,
  exp: number,
  ttlEpoch: number,
): Record<string, unknown> {
  const key = replayKey(issuer, jti);
  return {
    ...key,
    ...selfIndexKeys(key),
    type: "replay" satisfies ItemType,
    exp,
    [TTL_ATTRIBUTE]: ttlEpoch,
  };
}

/** A revocation entry as stored. */
export interface RevocationEntryItem {
  readonly roleArn: string;
  readonly taskId: string;
  /** RFC 3339: when the task was first revoked on the role. */
  readonly revokedAt: string;
  /** RFC 3339: latest `Expiration` of any credential of the task. */
  readonly credentialsExpireAt: string;
}

/** A task's revocation entry on a target role. No TTL: the prune lease removes it. */
export function revocationItem(entry: RevocationEntryItem): Record<string, unknown> {
  return {
    ...revocationKey(entry.roleArn, entry.taskId),
    type: "revocation" satisfies ItemType,
    roleArn: entry.roleArn,
    taskId: entry.taskId,
    revokedAt: entry.revokedAt,
    credentialsExpireAt: entry.credentialsExpireAt,
  };
}

/** Seconds a prune lease waits after the task's last credential expires. */
export const PRUNE_GRACE_SECONDS = 300;

/**
 * The lease that prunes a revocation entry: it expires {@link PRUNE_GRACE_SECONDS} after
 * `credentialsExpireAt`, and the TTL stream's `REMOVE` record of it prunes the entry.
 */
export function pruneLeaseItem(
  roleArn: string,
  taskId: string,
  credentialsExpireAt: string,
): Record<string, unknown> {
  const key = pruneLeaseKey(roleArn, taskId);
  return {
    ...key,
    ...selfIndexKeys(key),
    type: "lease" satisfies ItemType,
    leaseKind: "prune",
    roleArn,
    taskId,
    [TTL_ATTRIBUTE]: toEpochSeconds(credentialsExpireAt) + PRUNE_GRACE_SECONDS,
  };
}

/**
 * A role's projection lock, held by `owner` until `lockExpiresAt` (epoch milliseconds). No TTL
 * attribute: an expired lock is taken over by the next writer, a released one deleted.
 */
export function roleLockItem(roleArn: string, owner: string, lockExpiresAt: number): Record<string, unknown> {
  return {
    ...roleLockKey(roleArn),
    type: "lock" satisfies ItemType,
    roleArn,
    owner,
    lockExpiresAt,
  };
}

/** A target role's meta item; `cutoff` (RFC 3339) is set while the size fallback is in force. */
export function roleMetaItem(roleArn: string, cutoff?: string): Record<string, unknown> {
  return {
    ...roleMetaKey(roleArn),
    type: "role" satisfies ItemType,
    roleArn,
    ...(cutoff === undefined ? {} : { cutoff }),
  };
}

/** An inline policy of a role as the sandbox keeps it (the document as a JSON string). */
export function sandboxRolePolicyItem(
  roleArn: string,
  policyName: string,
  document: string,
): Record<string, unknown> {
  return {
    ...sandboxRolePolicyKey(roleArn, policyName),
    type: "sandbox-role-policy" satisfies ItemType,
    roleArn,
    policyName,
    document,
  };
}

/** Drops `undefined` properties (recursively through plain objects): DynamoDB cannot store them. */
export function withoutUndefined<T extends object>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue;
    out[key] = isPlainObject(v) ? withoutUndefined(v) : v;
  }
  return out as T;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

/** Returns a copy of an item without its key, type and index attributes. */
export function stripKeys(item: Record<string, unknown>): Record<string, unknown> {
  const out = { ...item };
  for (const name of KEY_ATTRIBUTES) delete out[name];
  return out;
}

/**
 * The table's definition: `pk`/`sk` strings, GSI `gsi1` (`gsi1pk`/`gsi1sk`, all attributes
 * projected), a `NEW_AND_OLD_IMAGES` stream and on-demand billing. TTL is not part of
 * `CreateTable`; {@link ensureTable} enables it on {@link TTL_ATTRIBUTE}.
 */
export function tableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    AttributeDefinitions: [
      { AttributeName: "pk", AttributeType: "S" },
      { AttributeName: "sk", AttributeType: "S" },
      { AttributeName: "gsi1pk", AttributeType: "S" },
      { AttributeName: "gsi1sk", AttributeType: "S" },
    ],
    KeySchema: [
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: GSI1,
        KeySchema: [
          { AttributeName: "gsi1pk", KeyType: "HASH" },
          { AttributeName: "gsi1sk", KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "ALL" },
      },
    ],
    BillingMode: "PAY_PER_REQUEST",
    StreamSpecification: { StreamEnabled: true, StreamViewType: "NEW_AND_OLD_IMAGES" },
  };
}

/** What {@link ensureTable} found or created. */
export interface EnsuredTable {
  readonly tableName: string;
  /** ARN of the table's `NEW_AND_OLD_IMAGES` stream (read by the TTL backstop). */
  readonly streamArn: string;
}

/**
 * Creates the table as {@link tableDefinition} describes unless it exists, waits until it is
 * `ACTIVE`, and enables TTL on {@link TTL_ATTRIBUTE}. Safe to call again and concurrently.
 * Meant for DynamoDB Local (sandbox, tests); deployed tables come from the CDK stack.
 *
 * @throws Error when an existing table has no `NEW_AND_OLD_IMAGES` stream
 * @example
 * const { streamArn } = await ensureTable(client, "jitv");
 */
export async function ensureTable(client: DynamoDBClient, tableName: string): Promise<EnsuredTable> {
  if (!(await describe(client, tableName))) {
    try {
      await client.send(new CreateTableCommand(tableDefinition(tableName)));
    } catch (error) {
      if (!isNamed(error, "ResourceInUseException")) throw error;
    }
  }
  await waitUntilTableExists({ client, maxWaitTime: 60, minDelay: 1, maxDelay: 2 }, { TableName: tableName });
  const table = await describe(client, tableName);
  const stream = table?.StreamSpecification;
  if (!table?.LatestStreamArn || !stream?.StreamEnabled || stream.StreamViewType !== "NEW_AND_OLD_IMAGES") {
    throw new Error(`table ${tableName} exists without a NEW_AND_OLD_IMAGES stream; use another table`);
  }

  const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
  const { TimeToLiveStatus: status, AttributeName: attribute } = ttl.TimeToLiveDescription ?? {};
  if ((status === "ENABLED" || status === "ENABLING") && attribute !== TTL_ATTRIBUTE) {
    throw new Error(`table ${tableName} has TTL on ${attribute}, not ${TTL_ATTRIBUTE}; use another table`);
  }
  if (status !== "ENABLED" && status !== "ENABLING") {
    try {
      await client.send(
        new UpdateTimeToLiveCommand({
          TableName: tableName,
          TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
        }),
      );
    } catch (error) {
      // A concurrent caller enabled it first.
      if (!(isNamed(error, "ValidationException") && /already enabled/i.test(String(error)))) throw error;
    }
  }
  return { tableName, streamArn: table.LatestStreamArn };
}

async function describe(client: DynamoDBClient, tableName: string) {
  try {
    return (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
  } catch (error) {
    if (isNamed(error, "ResourceNotFoundException")) return undefined;
    throw error;
  }
}

function isNamed(error: unknown, name: string): boolean {
  return error instanceof Error && error.name === name;
}
