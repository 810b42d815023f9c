import { createHash, randomUUID } from "node:crypto";
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { InternalError, UpstreamUnavailableError } from "../domain/errors.js";
import { isConditionalCheckFailed, storeUnavailable } from "../store/dynamo-errors.js";
import {
  PRUNE_GRACE_SECONDS,
  pruneLeaseItem,
  REVOKED_SK_PREFIX,
  revocationItem,
  revocationKey,
  roleLockItem,
  roleLockKey,
  roleMetaItem,
  roleMetaKey,
  rolePk,
  TTL_ATTRIBUTE,
} from "../store/table.js";
import {
  placeRevocations,
  REVOCATION_POLICY_BUDGET_CHARS,
  renderOverflowPolicy,
  renderRevocationPolicy,
} from "./policy.js";
import {
  REVOCATION_POLICY_NAME,
  type RevocationEntry,
  type RevocationStore,
  RoleNotFoundError,
  RolePolicyLimitError,
  type RolePolicyWriter,
} from "./revocation-store.js";

/** Options of {@link DynamoRevocationStore}. */
export interface DynamoRevocationStoreOptions {
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /** Where the projected policy goes: IAM when deployed, the table in the sandbox. */
  readonly writer: RolePolicyWriter;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /**
   * Most non-whitespace characters the projected policy may use before the cutoff fallback; the
   * budget is the smaller of this and what the role's inline quota really has free
   * (`RolePolicyWriter.freeInlineChars`).
   * @default REVOCATION_POLICY_BUDGET_CHARS (6144)
   */
  readonly budgetChars?: number;
  /**
   * How long a projection lock is held before another writer may take it over (a crashed
   * holder). Must exceed the longest projection, IAM retries included.
   * @default 30000
   */
  readonly lockTtlMs?: number;
  /**
   * How long, in total backoff, a projection waits for the role's lock before giving up.
   * @default 20000
   */
  readonly lockWaitMs?: number;
  /**
   * Called once when the policy outgrew the budget and a new cutoff was set (every session of
   * the role issued before `cutoff` is denied). The caller emits a metric and an audit event.
   * Errors it throws are ignored: they must not stop a revocation.
   */
  readonly onFallback?: (roleArn: string, cutoff: string) => void;
  /**
   * Called when the role no longer exists (IAM `NoSuchEntity`): its sessions have no permissions
   * left, so the revocation counts as done. The caller audits it. Errors it throws are ignored.
   */
  readonly onRoleMissing?: (roleArn: string) => void;
  /** Injected in tests so backoff does not really wait. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Random number in [0, 1) for the backoff jitter. @default Math.random */
  readonly random?: () => number;
}

/** A revocation entry as read back. */
interface StoredEntry {
  readonly taskId: string;
  readonly revokedAt: string;
  readonly credentialsExpireAt: string;
  /** Where the id is listed: 0 = the inline policy, 1… = the overflow managed policies. */
  readonly slot?: number;
}

/** No session issued before the cutoff outlives it by more than this (STS one-hour cap + margin). */
const CUTOFF_LIFETIME_MS = (3600 + 300) * 1000;
const PRUNE_GRACE_MS = PRUNE_GRACE_SECONDS * 1000;
/** Slot placements written at once (a burst places hundreds of ids in one projection). */
const SLOT_WRITES_IN_PARALLEL = 16;
/** Projections restarted after finding their lock taken over, before giving up. */
const MAX_LOST_LOCK_ROUNDS = 3;

/**
 * The DynamoDB adapter of {@link RevocationStore} (CONTRACT.md section 6), on the single table
 * of `table.ts`.
 *
 * The source of truth is one `revocation` entry per revoked task per role. Every change
 * re-projects the role's whole inline policy `jitv-revoked-tasks` from the entries through the
 * {@link RolePolicyWriter}. IAM has no conditional write, so projections of a role are
 * serialised by a lock item (conditional put, taken over once expired): each writer writes its
 * entry before taking the lock and renders from a strongly consistent read of every entry
 * while holding it, so concurrent revocations never drop an entry. A projection that finds its
 * lock taken over when releasing it (it outlived `lockTtlMs`) runs again, so a stale document
 * never stays last.
 *
 * Entries whose credentials expired more than 5 minutes ago are not rendered (nothing is left
 * to deny) even when their prune lease has not fired yet; DynamoDB TTL can lag.
 *
 * When the policy outgrows `budgetChars`, the store falls back to a cutoff: it denies every
 * session of the role issued before `cutoff` (now, rounded up to the second) and lists only
 * tasks revoked at or after it; the sessions of tasks revoked earlier were issued before their
 * revocation, so before the cutoff. The cutoff statement is kept for one hour and five minutes
 * (no session lives longer than an hour), then dropped at the next projection.
 *
 * DynamoDB failures become `UpstreamUnavailableError` with a fixed message (the SDK error is
 * kept only as `cause`); the writer's errors pass through.
 *
 * @example
 * const store = new DynamoRevocationStore({ client: doc, tableName: "jitv", writer: new IamRolePolicyWriter({ client: iam }) });
 * await store.revoke({ roleArn, taskId, credentialsExpireAt: "2025-06-01T13:00:00.000Z" });
 */
export class DynamoRevocationStore implements RevocationStore {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #writer: RolePolicyWriter;
  readonly #now: () => Date;
  readonly #budgetChars: number;
  readonly #lockTtlMs: number;
  readonly #lockWaitMs: number;
  readonly #onFallback: ((roleArn: string, cutoff: string) => void) | undefined;
  readonly #onRoleMissing: ((roleArn: string) => void) | undefined;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;

  constructor(options: DynamoRevocationStoreOptions) {
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#writer = options.writer;
    this.#now = options.now ?? (() => new Date());
    this.#budgetChars = options.budgetChars ?? REVOCATION_POLICY_BUDGET_CHARS;
    this.#lockTtlMs = options.lockTtlMs ?? 30_000;
    this.#lockWaitMs = options.lockWaitMs ?? 20_000;
    this.#onFallback = options.onFallback;
    this.#onRoleMissing = options.onRoleMissing;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#random = options.random ?? Math.random;
  }

  /**
   * Records the task as revoked on its role, arms its prune lease at `credentialsExpireAt + 5
   * minutes`, and re-projects the role's policy. Idempotent: a second call keeps the first
   * `revokedAt`, and neither the entry's `credentialsExpireAt` nor the lease ever move earlier.
   * @throws InternalError when `credentialsExpireAt` is not a time or an id is empty
   * @throws UpstreamUnavailableError when DynamoDB or the writer fails, or the role stays locked
   */
  async revoke(entry: RevocationEntry): Promise<void> {
    if (entry.roleArn === "" || entry.taskId === "") {
      throw new InternalError("a revocation needs a role and a task id");
    }
    const ms = Date.parse(entry.credentialsExpireAt);
    if (Number.isNaN(ms)) throw new InternalError("credentials expiry is not a time");
    const credentialsExpireAt = new Date(ms).toISOString();
    // The lease first: an entry must never exist without something that prunes it.
    await this.#armPruneLease(entry.roleArn, entry.taskId, credentialsExpireAt);
    await this.#writeEntry({
      roleArn: entry.roleArn,
      taskId: entry.taskId,
      revokedAt: this.#now().toISOString(),
      credentialsExpireAt,
    });
    await this.project(entry.roleArn, await this.#ticket(entry.roleArn));
  }

  /**
   * Removes the task's entry and re-projects the role's policy. Idempotent. An entry whose
   * `credentialsExpireAt` has not passed yet is kept (pruning it would let live sessions of a
   * revoked task work again) and its prune lease is re-armed instead.
   * @throws UpstreamUnavailableError when DynamoDB or the writer fails, or the role stays locked
   */
  async prune(roleArn: string, taskId: string): Promise<boolean> {
    const now = this.#now().toISOString();
    try {
      await this.#client.send(
        new DeleteCommand({
          TableName: this.#tableName,
          Key: revocationKey(roleArn, taskId),
          ConditionExpression: "attribute_not_exists(pk) OR #expiry <= :now",
          ExpressionAttributeNames: { "#expiry": "credentialsExpireAt" },
          ExpressionAttributeValues: { ":now": now },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
    } catch (error) {
      if (!isConditionalCheckFailed(error)) throw unavailable(error);
      // Credentials still live: the lease fired early (clock skew, manual call). Wait again.
      const expiry = (error as { Item?: Record<string, { S?: string }> }).Item?.credentialsExpireAt?.S;
      if (expiry !== undefined && !Number.isNaN(Date.parse(expiry))) {
        await this.#armPruneLease(roleArn, taskId, expiry);
      }
      return false;
    }
    await this.project(roleArn, await this.#ticket(roleArn));
    return true;
  }

  /** Task ids revoked on the role (source of truth, strongly consistent), sorted. */
  async revokedTaskIds(roleArn: string): Promise<string[]> {
    return (await this.#entries(roleArn)).map((entry) => entry.taskId).sort();
  }

  /**
   * Re-projects the role's policy from its entries: puts `jitv-revoked-tasks`, or deletes it
   * when nothing is left to deny. `revoke` and `prune` call it; call it directly to drop an
   * expired fallback cutoff or to repair a policy changed outside jitv.
   * @throws UpstreamUnavailableError when DynamoDB or the writer fails, or the role stays locked
   */
  async project(roleArn: string, ticket?: number): Promise<void> {
    for (let round = 1; ; round++) {
      const owner = randomUUID();
      // Another writer's projection that started after our change covers it: nothing left to do.
      if ((await this.#acquire(roleArn, owner, ticket)) === "covered") return;
      try {
        await this.#projectLocked(roleArn);
      } catch (error) {
        await this.#release(roleArn, owner).catch(() => undefined);
        throw error;
      }
      if (await this.#release(roleArn, owner)) return;
      if (round >= MAX_LOST_LOCK_ROUNDS) {
        throw new UpstreamUnavailableError("revocation policy projection kept losing its lock, try again");
      }
    }
  }

  async #projectLocked(roleArn: string): Promise<void> {
    const now = this.#now();
    const nowMs = now.getTime();
    // Read before the entries: every change whose ticket is at most this is in what we read.
    const { cutoff: storedCutoff, requested, written } = await this.#meta(roleArn);
    const entries = await this.#entries(roleArn);
    const live = entries.filter((e) => Date.parse(e.credentialsExpireAt) + PRUNE_GRACE_MS > nowMs);
    const cutoffExpired =
      storedCutoff !== undefined && !(nowMs < Date.parse(storedCutoff) + CUTOFF_LIFETIME_MS);
    let cutoff = cutoffExpired ? undefined : storedCutoff;
    let fellBack = false;
    const writtenNow: Record<string, string> = { ...written };

    try {
      const overflow = await this.#writer.overflowPolicies(roleArn);
      const inlineBudget = Math.min(
        this.#budgetChars,
        await this.#writer.freeInlineChars(roleArn, REVOCATION_POLICY_NAME),
      );
      const plan = (issuedBefore: string | undefined) =>
        placeRevocations({
          tasks: listed(live, issuedBefore),
          ...(issuedBefore === undefined ? {} : { issuedBefore }),
          inlineBudget,
          overflowSlots: overflow.length,
        });
      /** The size fallback: deny every session of the role issued before now (a few hundred characters). */
      const fallBack = async () => {
        cutoff = cutoffAt(now);
        // Recorded before the policy is written: a failed write is retried with the same cutoff.
        await this.#setCutoff(roleArn, cutoff);
        this.#notify(this.#onFallback, roleArn, cutoff);
        fellBack = true;
        // Tasks revoked in the cutoff's own second stay listed inline, whatever the soft budget.
        return (
          plan(cutoff) ?? {
            slots: [listed(live, cutoff).map((e) => e.taskId), ...overflow.map(() => [])],
            placed: new Map(listed(live, cutoff).map((e) => [e.taskId, 0])),
          }
        );
      };
      let placement = plan(cutoff) ?? (await fallBack());

      const write = async (): Promise<void> => {
        const { slots, placed } = placement;
        await this.#recordSlots(roleArn, placed);
        // Overflow policies first: an id moving from the inline list is listed before it leaves it.
        for (const [index, policyId] of overflow.entries()) {
          const document = renderOverflowPolicy(slots[index + 1] ?? []);
          const hash = digest(document);
          if (writtenNow[policyId] === hash) continue;
          await this.#writer.putOverflow(roleArn, policyId, document);
          writtenNow[policyId] = hash;
        }
        const inline = renderRevocationPolicy({
          taskIds: slots[0] ?? [],
          ...(cutoff === undefined ? {} : { issuedBefore: cutoff }),
        });
        if (inline === undefined) await this.#writer.delete(roleArn, REVOCATION_POLICY_NAME);
        else await this.#writer.put(roleArn, REVOCATION_POLICY_NAME, inline);
      };
      await write().catch(async (error: unknown) => {
        // The role's own policies grew since we measured them: never leave an ended task usable.
        if (!(error instanceof RolePolicyLimitError) || fellBack) throw error;
        placement = await fallBack();
        await write();
      });
    } catch (error) {
      if (!(error instanceof RoleNotFoundError)) throw error;
      // A deleted role's sessions have no permissions left: nothing to deny, and retrying cannot help.
      this.#notify(this.#onRoleMissing, roleArn);
    }
    if (cutoffExpired && !fellBack) await this.#setCutoff(roleArn, undefined);
    await this.#markProjected(roleArn, requested, writtenNow);
  }

  /** Records where newly placed ids are listed (entries pruned meanwhile are not brought back). */
  async #recordSlots(roleArn: string, placed: ReadonlyMap<string, number>): Promise<void> {
    const all = [...placed];
    for (let i = 0; i < all.length; i += SLOT_WRITES_IN_PARALLEL) {
      await Promise.all(
        all
          .slice(i, i + SLOT_WRITES_IN_PARALLEL)
          .map(([taskId, slot]) => this.#recordSlot(roleArn, taskId, slot)),
      );
    }
  }

  async #recordSlot(roleArn: string, taskId: string, slot: number): Promise<void> {
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.#tableName,
          Key: revocationKey(roleArn, taskId),
          UpdateExpression: "SET #slot = :slot",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeNames: { "#slot": "slot" },
          ExpressionAttributeValues: { ":slot": slot },
        }),
      );
    } catch (error) {
      if (!isConditionalCheckFailed(error)) throw unavailable(error);
    }
  }

  /**
   * Takes the role's projection lock, or answers `covered` as soon as a projection that started
   * after the caller's change (its `ticket`) has finished: under a burst, one projection serves
   * every change that queued behind the lock.
   */
  async #acquire(roleArn: string, owner: string, ticket: number | undefined): Promise<"locked" | "covered"> {
    let waited = 0;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0 && ticket !== undefined && (await this.#meta(roleArn)).projected >= ticket) {
        return "covered";
      }
      const nowMs = this.#now().getTime();
      try {
        await this.#client.send(
          new PutCommand({
            TableName: this.#tableName,
            Item: roleLockItem(roleArn, owner, nowMs + this.#lockTtlMs),
            ConditionExpression: "attribute_not_exists(pk) OR lockExpiresAt < :now",
            ExpressionAttributeValues: { ":now": nowMs },
          }),
        );
        return "locked";
      } catch (error) {
        if (!isConditionalCheckFailed(error)) throw unavailable(error);
      }
      if (waited >= this.#lockWaitMs) {
        throw new UpstreamUnavailableError("revocation policy of the role is busy, try again");
      }
      // Equal jitter: contenders spread out, and every wait counts towards the bound.
      const ceiling = Math.min(1000, 50 * 2 ** attempt);
      const delay = Math.ceil(ceiling / 2 + (this.#random() * ceiling) / 2);
      await this.#sleep(delay);
      waited += delay;
    }
  }

  /** Releases the lock. `false` when another writer took it over meanwhile. */
  async #release(roleArn: string, owner: string): Promise<boolean> {
    try {
      await this.#client.send(
        new DeleteCommand({
          TableName: this.#tableName,
          Key: roleLockKey(roleArn),
          ConditionExpression: "#owner = :owner",
          ExpressionAttributeNames: { "#owner": "owner" },
          ExpressionAttributeValues: { ":owner": owner },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionalCheckFailed(error)) return false;
      // The policy is written; an unreleased lock only delays the next writer until it expires.
      return true;
    }
  }

  async #armPruneLease(roleArn: string, taskId: string, credentialsExpireAt: string): Promise<void> {
    const item = pruneLeaseItem(roleArn, taskId, credentialsExpireAt);
    try {
      await this.#client.send(
        new PutCommand({
          TableName: this.#tableName,
          Item: item,
          ConditionExpression: "attribute_not_exists(#ttl) OR #ttl < :ttl",
          ExpressionAttributeNames: { "#ttl": TTL_ATTRIBUTE },
          ExpressionAttributeValues: { ":ttl": item[TTL_ATTRIBUTE] },
        }),
      );
    } catch (error) {
      // A lease that fires later is already armed.
      if (!isConditionalCheckFailed(error)) throw unavailable(error);
    }
  }

  async #writeEntry(entry: {
    roleArn: string;
    taskId: string;
    revokedAt: string;
    credentialsExpireAt: string;
  }): Promise<void> {
    const { pk, sk, ...attributes } = revocationItem(entry);
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const sets = Object.entries(attributes).map(([name, value], i) => {
      names[`#a${i}`] = name;
      values[`:a${i}`] = value;
      return name === "revokedAt" ? `#a${i} = if_not_exists(#a${i}, :a${i})` : `#a${i} = :a${i}`;
    });
    names["#expiry"] = "credentialsExpireAt";
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.#tableName,
          Key: { pk, sk },
          UpdateExpression: `SET ${sets.join(", ")}`,
          // Both sides are `toISOString` forms, so string order is time order.
          ConditionExpression: "attribute_not_exists(#expiry) OR #expiry < :expiry",
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: { ...values, ":expiry": entry.credentialsExpireAt },
        }),
      );
    } catch (error) {
      // The entry exists with the same or a later expiry: already revoked.
      if (!isConditionalCheckFailed(error)) throw unavailable(error);
    }
  }

  async #entries(roleArn: string): Promise<StoredEntry[]> {
    const entries: StoredEntry[] = [];
    let startKey: Record<string, unknown> | undefined;
    try {
      do {
        const page = await this.#client.send(
          new QueryCommand({
            TableName: this.#tableName,
            KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues: { ":pk": rolePk(roleArn), ":prefix": REVOKED_SK_PREFIX },
            ConsistentRead: true,
            ExclusiveStartKey: startKey,
          }),
        );
        for (const item of page.Items ?? []) {
          const { taskId, revokedAt, credentialsExpireAt } = item;
          if (
            typeof taskId === "string" &&
            typeof revokedAt === "string" &&
            typeof credentialsExpireAt === "string"
          ) {
            entries.push({
              taskId,
              revokedAt,
              credentialsExpireAt,
              ...(typeof item.slot === "number" ? { slot: item.slot } : {}),
            });
          }
        }
        startKey = page.LastEvaluatedKey;
      } while (startKey !== undefined);
    } catch (error) {
      throw unavailable(error);
    }
    return entries;
  }

  /**
   * The role's meta item: the fallback `cutoff`, and the projection counters — `requested` counts
   * changes to the role's entries (each revoke or prune takes the next number as its ticket),
   * `projected` is the highest number a finished projection had read before its entries.
   */
  async #meta(
    roleArn: string,
  ): Promise<{ cutoff?: string; requested: number; projected: number; written: Record<string, string> }> {
    try {
      const out = await this.#client.send(
        new GetCommand({ TableName: this.#tableName, Key: roleMetaKey(roleArn), ConsistentRead: true }),
      );
      const item = out.Item ?? {};
      return {
        ...(typeof item.cutoff === "string" ? { cutoff: item.cutoff } : {}),
        requested: typeof item.requested === "number" ? item.requested : 0,
        projected: typeof item.projected === "number" ? item.projected : 0,
        // Digest of each overflow policy's document as last written.
        written:
          typeof item.written === "object" && item.written !== null
            ? (item.written as Record<string, string>)
            : {},
      };
    } catch (error) {
      throw unavailable(error);
    }
  }

  /** Counts one change to the role's entries (after it is written) and returns its number. */
  async #ticket(roleArn: string): Promise<number> {
    const out = await this.#updateMeta(roleArn, "ADD requested :one", { ":one": 1 }, "UPDATED_NEW");
    return Number(out?.requested ?? 0);
  }

  async #markProjected(roleArn: string, requested: number, written: Record<string, string>): Promise<void> {
    const hasWritten = Object.keys(written).length > 0;
    await this.#updateMeta(
      roleArn,
      hasWritten ? "SET projected = :n, written = :written" : "SET projected = :n",
      { ":n": requested, ...(hasWritten ? { ":written": written } : {}) },
      "NONE",
    );
    // No condition: projections are serialised by the lock, so the last to finish wrote the documents.
  }

  async #setCutoff(roleArn: string, cutoff: string | undefined): Promise<void> {
    await (cutoff === undefined
      ? this.#updateMeta(roleArn, "REMOVE cutoff", undefined, "NONE")
      : this.#updateMeta(roleArn, "SET cutoff = :cutoff", { ":cutoff": cutoff }, "NONE"));
  }

  async #updateMeta(
    roleArn: string,
    expression: string,
    values: Record<string, unknown> | undefined,
    returnValues: "UPDATED_NEW" | "NONE",
    extra: { ConditionExpression?: string } = {},
  ): Promise<Record<string, unknown> | undefined> {
    const { pk, sk, ...attributes } = roleMetaItem(roleArn);
    try {
      const out = await this.#client.send(
        new UpdateCommand({
          TableName: this.#tableName,
          Key: { pk, sk },
          UpdateExpression: `SET #type = :type, roleArn = :role ${expression.startsWith("SET ") ? `, ${expression.slice(4)}` : expression}`,
          ExpressionAttributeNames: { "#type": "type" },
          ExpressionAttributeValues: { ":type": attributes.type, ":role": roleArn, ...values },
          ReturnValues: returnValues,
          ...extra,
        }),
      );
      return out.Attributes;
    } catch (error) {
      if (isConditionalCheckFailed(error)) throw error;
      throw unavailable(error);
    }
  }

  #notify<A extends unknown[]>(callback: ((...args: A) => void) | undefined, ...args: A): void {
    try {
      callback?.(...args);
    } catch {
      // Reporting must not stop a revocation.
    }
  }
}

/** The entries to list: with a cutoff, only tasks revoked at or after it (earlier ones it covers). */
function listed(live: readonly StoredEntry[], cutoff: string | undefined): StoredEntry[] {
  const cutoffMs = cutoff === undefined ? undefined : Date.parse(cutoff);
  return live
    .filter((e) => cutoffMs === undefined || !(Date.parse(e.revokedAt) < cutoffMs))
    .sort((a, b) => (a.revokedAt < b.revokedAt ? -1 : a.revokedAt > b.revokedAt ? 1 : 0));
}

/** A short digest of a document, to skip rewriting an overflow policy that did not change. */
function digest(document: string): string {
  return createHash("sha256").update(document).digest("base64url").slice(0, 22);
}

/** The fallback cutoff for `now`: rounded up to the second, in IAM's `yyyy-MM-ddTHH:mm:ssZ` form. */
function cutoffAt(now: Date): string {
  return new Date(Math.ceil(now.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/** Wraps an SDK failure without repeating its message (which may quote request data). */
const unavailable = (error: unknown) => storeUnavailable("revocation store", error);

// By name, not `instanceof`: the document client may load its own copy of client-dynamodb.
