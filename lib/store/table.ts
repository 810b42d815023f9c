import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  type DynamoDBClient,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import { isNamed } from "../domain/errors.js";
import type { Task, TaskStatus } from "../domain/task.js";

/**
 * The single-table design of jitv, shared by the DynamoDB adapters, the sandbox, the tests and
 * the CDK stack. Every item has `pk`/`sk` and a `type`:
 *
 * | type          | pk                                   | sk         | gsi1pk                   | gsi1sk                  |
 * | ------------- | ------------------------------------ | ---------- | ------------------------ | ----------------------- |
 * | `task`        | `TASK#<taskId>`                      | `TASK`     | `AGENT#<issuer>#<agent>` | `<createdAt>#<taskId>`  |
 * |   (gsi2)      |                                      |            | gsi2pk `STATUS#<status>` | gsi2sk `<createdAt>#<taskId>` |
 * |   (gsi3)      | delegated tasks only                 |            | gsi3pk `TENANT#<tenant>` | gsi3sk `<createdAt>#<taskId>` |
 * | `lease`       | `LEASE#<taskId>`                     | `LEASE`    |                          |                         |
 * | `idempotency` | `IDEM#<issuer>#<agent>#<key>`        | `IDEM`     |                          |                         |
 * | `replay`      | `JTI#<issuer>#<jti>`                 | `JTI`      |                          |                         |
 * | `template`    | `TEMPLATE#<name>`                    | `TEMPLATE` | `TEMPLATES`              | `<name>`                |
 * | `revocation`  | `ROLE#<roleArn>`                     | `REVOKED#<taskId>` |                  |                         |
 * | `lease`       | `PRUNE#<roleArn>#<taskId>`           | `LEASE`    | (own `pk`)               | (own `sk`)              |
 * | `lock`        | `ROLE#<roleArn>`                     | `LOCK`     |                          |                         |
 * | `role`        | `ROLE#<roleArn>`                     | `META`     |                          |                         |
 * | `sandbox-role-policy` | `SANDBOXROLE#<roleArn>`      | `POLICY#<name>` |                     |                         |
 * | `agent`       | `AGENTSEEN#<issuer>#<agent>`         | `AGENT`    | `AGENTS`                 | `<issuer>#<agent>`      |
 * | `agent` (of a tenant) | `AGENTSEEN#<issuer>#<agent>`  | `TENANT#<tenant>` | `AGENTS#TENANT#<tenant>` | `<issuer>#<agent>` |
 * | `rate-bucket` | `RATE#<issuer>#<agent>`              | `BUCKET` / `BUCKET#refresh` | (own `pk`)               | (own `sk`)              |
 * | `active-count`| `ACTIVE#<template>#<issuer>#<agent>` | `COUNT`    |                          |                         |
 * | `policy-set`  | `POLICYSET#<name>`                   | `CURRENT`  | `POLICYSETS`             | `<name>`                |
 * | `policy-version` | `POLICYSET#<name>`                | `V#<version>` (10 digits) |           |                         |
 * | `drift-seen`  | `DRIFT#EVENT#<eventID>`              | `SEEN`     | (own `pk`)               | (own `sk`)              |
 * | `drift-denial`| `DRIFT#DENIED#<taskId>`              | `<eventTime>#<eventID>` | (own `pk`)  | (own `sk`)              |
 *
 * Drift (see `lib/drift/`): a `drift-seen` marker makes the detector idempotent per CloudTrail
 * `eventID`; a task's `drift-denial` items are its AccessDenied errors in event-time order, so the
 * errors within a window are one query. Both expire (`ttlEpoch`) once no window can need them.
 *
 * `gsi2` is the status index: a task's `gsi2pk` is `STATUS#<status>` and moves with every status
 * change in the same write, so listing the tasks in one state is a query, never a scan.
 * `gsi3` is the tenant index: a delegated task's `gsi3pk` is `TENANT#<tenant>`, so a customer-zone
 * admin's listing reads only its own tenant's partition, and every key a page reads (and so every
 * `nextToken`) belongs to that tenant. The agent registry keeps one item per agent and one per
 * (agent, tenant) it acted for, for the same reason.
 *
 * Limits: an `agent` item is the admin registry of every agent that vended (first/last seen,
 * total tasks). A `rate-bucket` is the agent's vend-rate token bucket, kept as the time its
 * next token is due (see `limits.ts`); it expires once the bucket would be full again. An
 * `active-count` counts the agent's tasks of one template that hold an active slot (`maxActivePerAgent`):
 * a task created with a slot carries {@link ACTIVE_SLOT_ATTRIBUTE}, and the write that ends it
 * removes that attribute and decrements the count in one transaction, so a slot is freed once.
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
 * Items that expire also carry `gsi1pk`/`gsi1sk` and `gsi2pk`/`gsi2sk`, set to their own `pk`/`sk` (see
 * {@link selfIndexKeys}): DynamoDB Local's TTL job builds the key of an expired item from every
 * attribute in `AttributeDefinitions`, fails to delete an item that lacks a GSI key attribute, and
 * then stalls on it, so no other item of the table expires either. Each such item is its own
 * index partition, so this costs one index write per item and creates no hot key.
 */

/** Name of the TTL attribute (epoch seconds). */
export const TTL_ATTRIBUTE = "ttlEpoch";
/** Name of the general-purpose global secondary index (agent's tasks, templates, agents). */
export const GSI1 = "gsi1";
/** Name of the status index: tasks by status, in creation order. */
export const GSI2 = "gsi2";
/** Name of the tenant index: delegated tasks by tenant, in creation order. */
export const GSI3 = "gsi3";
/** `gsi1pk` shared by all templates, so listing them is a query, never a scan. */
export const TEMPLATES_GSI1PK = "TEMPLATES";
/** `gsi1pk` shared by all `agent` registry items, so listing agents is a query, never a scan. */
export const AGENTS_GSI1PK = "AGENTS";
/**
 * On a task holding an active slot (created with `maxActive`): the `pk` of its `active-count`
 * item. Removed, and the count decremented, by the write that ends the task.
 */
export const ACTIVE_SLOT_ATTRIBUTE = "activeSlot";
/**
 * Attributes that make up the table's keys and indexes, plus internal bookkeeping; adapters strip
 * them from what they return.
 */
export const KEY_ATTRIBUTES = [
  "pk",
  "sk",
  "type",
  "gsi1pk",
  "gsi1sk",
  "gsi2pk",
  "gsi2sk",
  "gsi3pk",
  "gsi3sk",
  ACTIVE_SLOT_ATTRIBUTE,
] as const;

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
  | "sandbox-role-policy"
  | "agent"
  | "rate-bucket"
  | "active-count"
  | "policy-set"
  | "policy-version"
  | "drift-seen"
  | "drift-denial";

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

/** Key of an agent's registry item (first/last seen, total tasks). */
export function agentSeenKey(issuer: string, agentId: string): ItemKey {
  return { pk: `AGENTSEEN#${enc(issuer)}#${enc(agentId)}`, sk: "AGENT" };
}

/** Key of an agent's registry item for one tenant it acted for. */
export function agentTenantSeenKey(issuer: string, agentId: string, tenant: string): ItemKey {
  return { pk: `AGENTSEEN#${enc(issuer)}#${enc(agentId)}`, sk: `TENANT#${enc(tenant)}` };
}

/** `gsi1pk` of the registry items of the agents that acted for one tenant. */
export function tenantAgentsGsi1pk(tenant: string): string {
  return `${AGENTS_GSI1PK}#TENANT#${enc(tenant)}`;
}

/** `gsi3pk` of the delegated tasks of one tenant: query it to list them in creation order. */
export function tenantTasksGsi3pk(tenant: string): string {
  return `TENANT#${enc(tenant)}`;
}

/** `gsi1sk` of an agent's registry item under {@link AGENTS_GSI1PK}. */
export function agentSeenGsi1sk(issuer: string, agentId: string): string {
  return `${enc(issuer)}#${enc(agentId)}`;
}

/** Key of an agent's vend-rate token bucket (`refresh`: its refresh-rate bucket). */
export function rateBucketKey(issuer: string, agentId: string, bucket: "vend" | "refresh" = "vend"): ItemKey {
  return { pk: `RATE#${enc(issuer)}#${enc(agentId)}`, sk: bucket === "vend" ? "BUCKET" : "BUCKET#refresh" };
}

/** `sk` of every `active-count` item. */
export const ACTIVE_COUNT_SK = "COUNT";

/** Key of the count of an agent's tasks of one template that hold an active slot. */
export function activeCountKey(template: string, issuer: string, agentId: string): ItemKey {
  return { pk: `ACTIVE#${enc(template)}#${enc(issuer)}#${enc(agentId)}`, sk: ACTIVE_COUNT_SK };
}

/** `gsi2pk` of the tasks in one status: query it to list them in creation order. */
export function statusGsi2pk(status: TaskStatus): string {
  return `STATUS#${status}`;
}

/** `gsi1sk`/`gsi2sk` of a task: creation time first, so both indexes list tasks in creation order. */
export function taskIndexSk(task: Pick<Task, "createdAt" | "taskId">): string {
  return `${task.createdAt}#${enc(task.taskId)}`;
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
 * Every index key attribute for an item that expires: the item's own key. Needed so DynamoDB
 * Local's TTL job can delete it (see the module comment); harmless on DynamoDB.
 */
export function selfIndexKeys(key: ItemKey): {
  gsi1pk: string;
  gsi1sk: string;
  gsi2pk: string;
  gsi2sk: string;
  gsi3pk: string;
  gsi3sk: string;
} {
  return { gsi1pk: key.pk, gsi1sk: key.sk, gsi2pk: key.pk, gsi2sk: key.sk, gsi3pk: key.pk, gsi3sk: key.sk };
}

/** The task record as stored: the task's fields plus keys, `type`, the agent and the status index. */
export function taskItem(task: Task): Record<string, unknown> {
  return {
    ...withoutUndefined(task),
    ...taskKey(task.taskId),
    type: "task" satisfies ItemType,
    gsi1pk: agentTasksGsi1pk(task.agent.issuer, task.agent.id),
    gsi1sk: taskIndexSk(task),
    gsi2pk: statusGsi2pk(task.status),
    gsi2sk: taskIndexSk(task),
    ...(task.onBehalfOf?.tenant === undefined
      ? {}
      : { gsi3pk: tenantTasksGsi3pk(task.onBehalfOf.tenant), gsi3sk: taskIndexSk(task) }),
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

/**
 * Cedar policy sets (see `lib/authz/dynamo-policy-store.ts`): every version of a set is kept as a
 * `policy-version` item; the set's `policy-set` item points at the current one and holds a copy
 * of its text, so loading all current sets is one query on {@link POLICYSETS_GSI1PK}. Both are
 * written in one transaction, conditional on the pointer's expected version.
 */
export const POLICYSETS_GSI1PK = "POLICYSETS";

/** Digits of the zero-padded version in a `policy-version` item's `sk`, so versions sort. */
const POLICY_VERSION_DIGITS = 10;

/** `sk` prefix of a policy set's `policy-version` items. */
export const POLICY_VERSION_SK_PREFIX = "V#";

/** Key of a policy set's current pointer. */
export function policySetKey(name: string): ItemKey {
  return { pk: `POLICYSET#${enc(name)}`, sk: "CURRENT" };
}

/** Key of one version of a policy set. */
export function policyVersionKey(name: string, version: number): ItemKey {
  return {
    pk: `POLICYSET#${enc(name)}`,
    sk: `${POLICY_VERSION_SK_PREFIX}${String(version).padStart(POLICY_VERSION_DIGITS, "0")}`,
  };
}

/** One version of a policy set as stored. */
export interface PolicySetVersionItem {
  readonly name: string;
  readonly version: number;
  /** The Cedar text, exactly as validated. */
  readonly text: string;
  /** RFC 3339: when this version was written. */
  readonly updatedAt: string;
}

/** A version of a policy set (immutable once written). */
export function policyVersionItem(entry: PolicySetVersionItem): Record<string, unknown> {
  return {
    ...policyVersionKey(entry.name, entry.version),
    type: "policy-version" satisfies ItemType,
    name: entry.name,
    version: entry.version,
    text: entry.text,
    updatedAt: entry.updatedAt,
  };
}

/** A policy set's current pointer, with a copy of the current version's text. */
export function policySetItem(entry: PolicySetVersionItem): Record<string, unknown> {
  return {
    ...policySetKey(entry.name),
    type: "policy-set" satisfies ItemType,
    gsi1pk: POLICYSETS_GSI1PK,
    gsi1sk: entry.name,
    name: entry.name,
    version: entry.version,
    text: entry.text,
    updatedAt: entry.updatedAt,
  };
}

/** Key of the marker recording that the drift detector handled one CloudTrail event. */
export function driftSeenKey(eventId: string): ItemKey {
  return { pk: `DRIFT#EVENT#${enc(eventId)}`, sk: "SEEN" };
}

/** `pk` of a task's `drift-denial` items: query a range of `sk` to count one window. */
export function driftDenialPk(taskId: string): string {
  return `DRIFT#DENIED#${enc(taskId)}`;
}

/**
 * Key of one AccessDenied error of a task; `eventTime` must be a normalised ISO time
 * (`Date.toISOString()`), so `sk` order is time order.
 */
export function driftDenialKey(taskId: string, eventTime: string, eventId: string): ItemKey {
  return { pk: driftDenialPk(taskId), sk: `${eventTime}#${enc(eventId)}` };
}

/** An expiring drift item (`drift-seen` or `drift-denial`) with its key and `ttlEpoch`. */
export function driftItem(
  type: "drift-seen" | "drift-denial",
  key: ItemKey,
  ttlEpoch: number,
  fields: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    ...fields,
    ...key,
    ...selfIndexKeys(key),
    type: type satisfies ItemType,
    [TTL_ATTRIBUTE]: ttlEpoch,
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
 * The table's definition: `pk`/`sk` strings, GSIs `gsi1` (`gsi1pk`/`gsi1sk`), `gsi2`
 * (`gsi2pk`/`gsi2sk`, the status index) and `gsi3` (`gsi3pk`/`gsi3sk`, the tenant index), all projecting all attributes, a `NEW_AND_OLD_IMAGES` stream and on-demand billing. TTL is not part of
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
      { AttributeName: "gsi2pk", AttributeType: "S" },
      { AttributeName: "gsi2sk", AttributeType: "S" },
      { AttributeName: "gsi3pk", AttributeType: "S" },
      { AttributeName: "gsi3sk", AttributeType: "S" },
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
      {
        IndexName: GSI2,
        KeySchema: [
          { AttributeName: "gsi2pk", KeyType: "HASH" },
          { AttributeName: "gsi2sk", KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "ALL" },
      },
      {
        IndexName: GSI3,
        KeySchema: [
          { AttributeName: "gsi3pk", KeyType: "HASH" },
          { AttributeName: "gsi3sk", KeyType: "RANGE" },
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
 * @throws Error when an existing table has no `NEW_AND_OLD_IMAGES` stream or lacks an index
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
  const indexes = new Set((table.GlobalSecondaryIndexes ?? []).map((index) => index.IndexName));
  const missing = [GSI1, GSI2, GSI3].filter((name) => !indexes.has(name));
  if (missing.length > 0) {
    // Adding an index to an old table is not enough: its expiring items lack the new key
    // attributes, which stalls DynamoDB Local's TTL job (see the module comment).
    throw new Error(
      `table ${tableName} exists without index ${missing.join(", ")} (made by an older jitv); use another table`,
    );
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
