import type { ConditionalCheckFailedException, TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  type DynamoDBDocumentClient,
  GetCommand,
  TransactWriteCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import {
  ConflictError,
  InternalError,
  isNamed,
  NotFoundError,
  RateLimitedError,
  UpstreamUnavailableError,
} from "../domain/errors.js";
import type { Task, TaskStatus } from "../domain/task.js";
import { isConditionalCheckFailed, storeUnavailable } from "../store/dynamo-errors.js";
import { REPLAY_GRACE_SECONDS, replayPut } from "../store/replay.js";
import {
  ACTIVE_COUNT_SK,
  ACTIVE_SLOT_ATTRIBUTE,
  activeCountKey,
  type ItemKey,
  type ItemType,
  idempotencyItem,
  idempotencyKey,
  leaseItem,
  rateBucketKey,
  statusGsi2pk,
  stripKeys,
  TTL_ATTRIBUTE,
  taskItem,
  taskKey,
} from "../store/table.js";
import type { VendRateLimit } from "./limits.js";
import { GcraBucket } from "./rate-bucket.js";
import {
  type CreateTaskOptions,
  type CreateTaskResult,
  ReplayedTokenError,
  type SingleUseToken,
  type TaskMarks,
  type TaskRepository,
} from "./repository.js";

/** Options of {@link DynamoTaskRepository}. */
export interface DynamoTaskRepositoryOptions {
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /** Clock used to decide whether an idempotency record has expired. @default () => new Date() */
  readonly now?: () => Date;
  /**
   * How many times a create is retried when DynamoDB cancels its transaction because another
   * transaction touched the same items at the same moment.
   * @default 8
   */
  readonly maxConflictRetries?: number;
  /** The per-agent vend rate a create with `rate` draws from. @default `DEFAULT_VEND_RATE` */
  readonly vendRate?: VendRateLimit;
  /** How long past a token's `exp` its spent `jti` blocks. @default `REPLAY_GRACE_SECONDS` */
  readonly replayGraceSeconds?: number;
}

type Item = Record<string, unknown>;

/** Outcome of a conditional status change: the updated task, or the record as found (absent when missing). */
type StatusChange =
  | { readonly changed: true; readonly task: Task }
  | { readonly changed: false; readonly found?: Item };
type TransactItem = NonNullable<
  ConstructorParameters<typeof TransactWriteCommand>[0]["TransactItems"]
>[number];
/** One item of a create's transaction, labelled with what it claims. */
type Entry = TransactItem & {
  readonly on: "rate" | "token" | "task" | "lease" | "idempotency" | "slot";
};
/** What a vend claims beside its task: the agent's rate bucket (its key) and its tokens' `jti`. */
interface Claims {
  readonly rate?: ItemKey;
  readonly tokens: readonly SingleUseToken[];
}

/**
 * The DynamoDB adapter of {@link TaskRepository}, on the single table of `table.ts`.
 *
 * A create is one transaction: the task record, its TTL lease and (with an Idempotency-Key) the
 * agent's idempotency record. The idempotency record's condition admits an expired record that
 * DynamoDB TTL has not deleted yet, since TTL deletion can lag by hours.
 *
 * With `maxActive`, the create also takes an active slot (`maxActivePerAgent`): a conditional
 * `ADD` on the agent's per-template `active-count` item in the same transaction, so the limit is
 * exact under concurrency. The task carries the slot; the status change that ends it (through
 * {@link DynamoTaskRepository.transition} or {@link DynamoTaskRepository.markFailed}) removes
 * it and decrements the count in one transaction, so a slot is freed exactly once. Every status
 * change also moves the task's `gsi2pk` (the status index) in the same write.
 *
 * Every DynamoDB failure that is not a domain outcome becomes `UpstreamUnavailableError` with a
 * fixed message (the SDK error is kept only as `cause`).
 */
export class DynamoTaskRepository implements TaskRepository {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #now: () => Date;
  readonly #maxConflictRetries: number;
  readonly #bucket: GcraBucket;
  readonly #replayGraceSeconds: number;
  /** Each vend bucket's `nextTokenAt` as this process last wrote or saw it (a guess: others write too). */
  readonly #bucketAt = new Map<string, number>();
  /** Per agent: the settling of the last create queued in this process ({@link #inTurn}). */
  readonly #queues = new Map<string, Promise<void>>();

  constructor(options: DynamoTaskRepositoryOptions) {
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#now = options.now ?? (() => new Date());
    this.#maxConflictRetries = options.maxConflictRetries ?? 8;
    this.#bucket = new GcraBucket(options.vendRate);
    this.#replayGraceSeconds = options.replayGraceSeconds ?? REPLAY_GRACE_SECONDS;
  }

  /**
   * In one transaction: takes the vend's rate token (`options.rate`), spends its tokens' `jti`
   * (`options.tokens`), writes the task, its lease and its idempotency record, and (with
   * `options.maxActive`) takes its active slot — or, for the agent's live task of the same
   * Idempotency-Key, writes no task and returns that one (a replay takes no slot, even when every
   * slot is taken; its rate token and `jti` are then taken by a second transaction).
   * @throws RateLimitedError when the agent's vend bucket is empty or `options.maxActive` slots are taken
   * @throws ReplayedTokenError when a token's `jti` was already spent
   * @throws InternalError when the task id already exists, an idempotency record points at a missing task, or `maxActive` is not a positive integer
   * @throws UpstreamUnavailableError when DynamoDB fails or stays contended
   */
  async create(task: Task, options: CreateTaskOptions = {}): Promise<CreateTaskResult> {
    const { maxActive } = options;
    if (maxActive !== undefined && !(Number.isInteger(maxActive) && maxActive >= 1)) {
      throw new InternalError("maxActive must be a positive integer");
    }
    const slot =
      maxActive !== undefined && holdsSlot(task.status)
        ? activeCountKey(task.template, task.agent.issuer, task.agent.id)
        : undefined;
    const claims: Claims = {
      ...(options.rate ? { rate: rateBucketKey(task.agent.issuer, task.agent.id) } : {}),
      tokens: options.tokens ?? [],
    };
    const entries = (): Entry[] => {
      const items: Entry[] = [
        {
          on: "task",
          Put: {
            TableName: this.#tableName,
            Item: { ...taskItem(task), ...(slot ? { [ACTIVE_SLOT_ATTRIBUTE]: slot.pk } : {}) },
            ConditionExpression: "attribute_not_exists(pk)",
          },
        },
        { on: "lease", Put: { TableName: this.#tableName, Item: leaseItem(task.taskId, task.expiresAt) } },
      ];
      if (task.idempotencyKey !== undefined) {
        items.push({
          on: "idempotency",
          Put: {
            TableName: this.#tableName,
            Item: idempotencyItem({ ...task, idempotencyKey: task.idempotencyKey }),
            ConditionExpression: "attribute_not_exists(pk) OR #ttl < :now",
            ExpressionAttributeNames: { "#ttl": TTL_ATTRIBUTE },
            ExpressionAttributeValues: { ":now": this.#nowSeconds() },
          },
        });
      }
      if (slot) {
        items.push({
          on: "slot",
          Update: {
            TableName: this.#tableName,
            Key: slot,
            UpdateExpression: "SET #type = :type ADD #active :one",
            ConditionExpression: "attribute_not_exists(#active) OR #active < :max",
            ExpressionAttributeNames: { "#type": "type", "#active": "active" },
            ExpressionAttributeValues: {
              ":type": "active-count" satisfies ItemType,
              ":one": 1,
              ":max": maxActive,
            },
          },
        });
      }
      return items;
    };
    // Vends of one agent in this process write its bucket (and slot count) one after another:
    // side by side, DynamoDB would cancel all but one transaction and each would back off.
    const shared = claims.rate !== undefined || slot !== undefined;
    const agentKey = JSON.stringify([task.agent.issuer, task.agent.id]);
    for (let attempt = 0; ; attempt++) {
      const refused = shared
        ? await this.#inTurn(agentKey, () => this.#transact(claims, entries))
        : await this.#transact(claims, entries);
      if (refused === undefined) return { created: true, task };
      const slotsTaken = refused.has("slot");
      if (refused.has("task")) throw new InternalError("task id already exists");
      if (task.idempotencyKey !== undefined && (refused.has("idempotency") || slotsTaken)) {
        // A replay answers with the existing task, whether or not a slot is free.
        const existing = await this.#findByIdempotencyKey(task, task.idempotencyKey);
        if (existing) {
          // A replay spends its tokens and draws on the rate like any vend; only then is it answered.
          if (claims.rate !== undefined) await this.#inTurn(agentKey, () => this.#transact(claims, () => []));
          else if (claims.tokens.length > 0) await this.#transact(claims, () => []);
          return { created: false, task: existing };
        }
        if (slotsTaken) throw new RateLimitedError("too many active tasks for this template");
        // The record expired or was deleted after the transaction saw it: write again.
      } else if (slotsTaken) {
        throw new RateLimitedError("too many active tasks for this template");
      } else {
        throw new InternalError("the task transaction was refused on an unconditional item");
      }
      if (attempt >= this.#maxConflictRetries) {
        throw new UpstreamUnavailableError("task store is busy, try again");
      }
    }
  }

  /**
   * Writes the claims' items (rate token, spent `jti`) and `entries()` in one transaction,
   * retrying DynamoDB's transaction conflicts and a rate write of the wrong branch (the bucket
   * was idle, or busy, against this process's last knowledge of it). Returns `undefined` once
   * written, or which of `entries` refused their condition.
   * @throws RateLimitedError when the bucket is empty; ReplayedTokenError when a `jti` was spent
   */
  async #transact(claims: Claims, entries: () => Entry[]): Promise<Set<Entry["on"]> | undefined> {
    let branch =
      claims.rate && this.#bucket.branchFor(this.#bucketAt.get(claims.rate.pk), this.#now().getTime());
    for (let attempt = 0; ; attempt++) {
      const now = this.#now().getTime();
      const items: Entry[] = [];
      if (claims.rate && branch) {
        items.push({ on: "rate", Update: this.#bucket.update(this.#tableName, claims.rate, branch, now) });
      }
      for (const token of claims.tokens) {
        items.push({
          on: "token",
          Put: replayPut(
            this.#tableName,
            { issuer: token.issuer, jti: token.jti, exp: token.expiresAt },
            Math.floor(now / 1000),
            this.#replayGraceSeconds,
          ),
        });
      }
      items.push(...entries());
      let cause: unknown;
      try {
        await this.#client.send(
          new TransactWriteCommand({ TransactItems: items.map(({ on: _, ...item }) => item) }),
        );
        if (claims.rate && branch)
          this.#rememberBucket(
            claims.rate.pk,
            this.#bucket.after(branch, this.#bucketAt.get(claims.rate.pk), now),
          );
        return undefined;
      } catch (error) {
        cause = error;
        if (isNamed<TransactionCanceledException>(error, "TransactionCanceledException")) {
          const reasons = error.CancellationReasons ?? [];
          const refused = (i: number) => reasons[i]?.Code === "ConditionalCheckFailed";
          const at = items.findIndex((item) => item.on === "rate");
          if (claims.rate && at !== -1 && refused(at)) {
            const raw = reasons[at]?.Item;
            const found = raw === undefined ? undefined : unmarshall(raw as Parameters<typeof unmarshall>[0]);
            if (typeof found?.nextTokenAt === "number")
              this.#rememberBucket(claims.rate.pk, found.nextTokenAt);
            const next = this.#bucket.afterRefusal(found, now);
            if (typeof next === "object") {
              throw new RateLimitedError("too many vends by this agent, slow down", next.retryAfterSeconds);
            }
            if (attempt >= this.#maxConflictRetries) {
              throw new UpstreamUnavailableError("rate limiter is busy, try again", { cause: error });
            }
            // The bucket was in the other state: write again for that one, at once.
            branch = next;
            continue;
          }
          const spent = claims.tokens.findIndex((_, i) => refused(i + (at === -1 ? 0 : 1)));
          const token = claims.tokens[spent];
          if (token) throw new ReplayedTokenError(token.role);
          const failed = new Set(items.filter((_, i) => refused(i)).map((item) => item.on));
          if (failed.size > 0) return failed;
          if (!reasons.some((r) => r.Code === "TransactionConflict")) throw unavailable(error);
        } else if (!isNamed(error, "TransactionConflictException")) {
          throw unavailable(error);
        }
      }
      if (attempt >= this.#maxConflictRetries) {
        throw new UpstreamUnavailableError("task store is busy, try again", { cause });
      }
      await backoff(attempt);
    }
  }

  /** Runs `write` after every earlier write queued under `key` in this process has settled. */
  #inTurn<T>(key: string, write: () => Promise<T>): Promise<T> {
    const run = (this.#queues.get(key) ?? Promise.resolve()).then(write);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(key, settled);
    void settled.then(() => {
      if (this.#queues.get(key) === settled) this.#queues.delete(key);
    });
    return run;
  }

  /** Remembers a bucket's `nextTokenAt`, so the next vend of the agent picks the right write. */
  #rememberBucket(pk: string, nextTokenAt: number): void {
    // A bound on memory: forgetting costs at most one extra round trip per agent.
    if (this.#bucketAt.size >= 10_000) this.#bucketAt.clear();
    this.#bucketAt.set(pk, nextTokenAt);
  }

  /** Reads a task (strongly consistent). Returns `undefined` when there is none. */
  async get(taskId: string): Promise<Task | undefined> {
    const item = await this.#getItem(taskKey(taskId));
    return item?.type === "task" ? (stripKeys(item) as unknown as Task) : undefined;
  }

  /**
   * Marks an `active` or `pending_approval` task `failed` with a reason safe to show its owner,
   * and frees its active slot.
   * @throws NotFoundError when the task does not exist
   * @throws ConflictError when the task is in another state
   */
  async markFailed(taskId: string, reason: string): Promise<void> {
    const change = await this.#changeStatus(taskId, ["active", "pending_approval"], "failed", reason);
    if (change.changed) return;
    if (change.found === undefined) throw new NotFoundError("task not found");
    throw new ConflictError(`task is ${String(change.found.status)}`);
  }

  /**
   * Records one credential issue: adds 1 to `issuedCount` and raises `lastCredentialExpiry` to
   * `credentialExpiration` unless it is already later (it never decreases, whatever the order
   * concurrent issues land in). Only an `active` task records an issue: a credential issued
   * while the task ended is never handed out, so revocation always sees every credential's
   * expiry when it schedules pruning. The expiry is stored in `Date.prototype.toISOString` form so that
   * string comparison is time comparison.
   * @throws NotFoundError when the task does not exist
   * @throws ConflictError when the task is no longer active
   * @throws InternalError when `credentialExpiration` is not a time
   */
  async recordIssue(taskId: string, credentialExpiration: string): Promise<void> {
    const ms = Date.parse(credentialExpiration);
    if (Number.isNaN(ms)) throw new InternalError("credential expiration is not a time");
    const expiry = new Date(ms).toISOString();
    const key = taskKey(taskId);
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.#tableName,
          Key: key,
          UpdateExpression: "ADD issuedCount :one SET lastCredentialExpiry = :expiry",
          ConditionExpression:
            "attribute_exists(pk) AND #status = :active AND (attribute_not_exists(lastCredentialExpiry) OR lastCredentialExpiry < :expiry)",
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: { ":one": 1, ":expiry": expiry, ":active": "active" },
        }),
      );
      return;
    } catch (error) {
      if (!isConditionFailure(error)) throw unavailable(error);
    }
    // The task is missing or already has a later expiry: only count the issue.
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.#tableName,
          Key: key,
          UpdateExpression: "ADD issuedCount :one",
          ConditionExpression: "attribute_exists(pk) AND #status = :active",
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: { ":one": 1, ":active": "active" },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) {
        if (error.Item === undefined) throw new NotFoundError("task not found");
        throw new ConflictError("task is no longer active");
      }
      throw unavailable(error);
    }
  }

  /**
   * Moves the task from one of `from` to `to` with a conditional write; sets `endedAt` when
   * `to` ends the task. Returns the updated task, or `undefined` when it was in another state.
   * @throws NotFoundError when the task does not exist
   */
  async transition(
    taskId: string,
    from: readonly TaskStatus[],
    to: TaskStatus,
    reason?: string,
  ): Promise<Task | undefined> {
    const change = await this.#changeStatus(taskId, from, to, reason);
    if (change.changed) return change.task;
    if (change.found === undefined) throw new NotFoundError("task not found");
    return undefined;
  }

  /** Sets lifecycle bookkeeping (task token, revokedAt, …). @throws NotFoundError for a missing task */
  async mark(taskId: string, marks: TaskMarks): Promise<void> {
    const entries = Object.entries(marks).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return;
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const sets = entries.map(([name, value], i) => {
      names[`#m${i}`] = name;
      values[`:m${i}`] = value;
      return `#m${i} = :m${i}`;
    });
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.#tableName,
          Key: taskKey(taskId),
          UpdateExpression: `SET ${sets.join(", ")}`,
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) throw new NotFoundError("task not found");
      throw unavailable(error);
    }
  }

  /**
   * Moves a task from one of `from` to `to`, its `gsi2pk` with it, in one conditional write. A
   * task that holds an active slot and moves to a status that holds none is moved by a
   * transaction that also removes the slot from the task and decrements its count — conditioned
   * on the exact state read, so concurrent moves free the slot once. Tasks without a slot (the
   * common case) cost one write, as before.
   */
  async #changeStatus(
    taskId: string,
    from: readonly TaskStatus[],
    to: TaskStatus,
    reason: string | undefined,
  ): Promise<StatusChange> {
    const freesSlot = !holdsSlot(to);
    const endsTask = to === "completed" || to === "revoked" || to === "expired";
    for (let attempt = 0; ; attempt++) {
      const now = this.#now().toISOString();
      const sets = ["#status = :to", "gsi2pk = :gsi2pk"];
      const names: Record<string, string> = { "#status": "status" };
      const values: Record<string, unknown> = { ":to": to, ":gsi2pk": statusGsi2pk(to) };
      if (reason !== undefined) {
        sets.push("#reason = :reason");
        names["#reason"] = "reason";
        values[":reason"] = reason;
      }
      if (endsTask) {
        sets.push("endedAt = if_not_exists(endedAt, :now)");
        values[":now"] = now;
      }
      const fromValues = Object.fromEntries(from.map((status, i) => [`:from${i}`, status]));
      let condition = `attribute_exists(pk) AND #status IN (${Object.keys(fromValues).join(", ")})`;
      if (freesSlot) condition += ` AND attribute_not_exists(${ACTIVE_SLOT_ATTRIBUTE})`;

      let found: Item | undefined;
      try {
        const out = await this.#client.send(
          new UpdateCommand({
            TableName: this.#tableName,
            Key: taskKey(taskId),
            UpdateExpression: `SET ${sets.join(", ")}`,
            ConditionExpression: condition,
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: { ...values, ...fromValues },
            ReturnValues: "ALL_NEW",
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          }),
        );
        if (!out.Attributes) throw new InternalError("status change returned no task");
        return { changed: true, task: toTask(out.Attributes) };
      } catch (error) {
        if (isConditionFailure(error)) {
          if (error.Item === undefined) return { changed: false };
          found = unmarshall(error.Item);
          if (!from.includes(found.status as TaskStatus)) return { changed: false, found };
        } else if (!isNamed(error, "TransactionConflictException")) {
          throw unavailable(error);
        }
        // Otherwise a slot transaction held the task, or it holds a slot: handled below.
      }

      const slotPk = found?.[ACTIVE_SLOT_ATTRIBUTE];
      let cause: unknown = new Error("the task changed during its status change");
      if (found !== undefined && freesSlot && typeof slotPk === "string") {
        try {
          await this.#client.send(
            new TransactWriteCommand({
              TransactItems: [
                {
                  Update: {
                    TableName: this.#tableName,
                    Key: taskKey(taskId),
                    UpdateExpression: `SET ${sets.join(", ")} REMOVE #slot`,
                    ConditionExpression: "#status = :observed AND #slot = :slot",
                    ExpressionAttributeNames: { ...names, "#slot": ACTIVE_SLOT_ATTRIBUTE },
                    ExpressionAttributeValues: { ...values, ":observed": found.status, ":slot": slotPk },
                  },
                },
                {
                  Update: {
                    TableName: this.#tableName,
                    Key: { pk: slotPk, sk: ACTIVE_COUNT_SK },
                    UpdateExpression: "ADD #active :minusOne",
                    ExpressionAttributeNames: { "#active": "active" },
                    ExpressionAttributeValues: { ":minusOne": -1 },
                  },
                },
              ],
            }),
          );
          const task = toTask(found);
          return {
            changed: true,
            task: {
              ...task,
              status: to,
              ...(reason === undefined ? {} : { reason }),
              ...(endsTask ? { endedAt: task.endedAt ?? now } : {}),
            },
          };
        } catch (error) {
          if (isNamed<TransactionCanceledException>(error, "TransactionCanceledException")) {
            const codes = (error.CancellationReasons ?? []).map((r) => r.Code);
            if (codes[0] !== "ConditionalCheckFailed" && !codes.includes("TransactionConflict")) {
              throw unavailable(error);
            }
          } else if (!isNamed(error, "TransactionConflictException")) {
            throw unavailable(error);
          }
          cause = error; // the task moved meanwhile: look again
        }
      }
      if (attempt >= this.#maxConflictRetries) {
        throw new UpstreamUnavailableError("task store is busy, try again", { cause });
      }
      await backoff(attempt);
    }
  }

  async #findByIdempotencyKey(task: Task, key: string): Promise<Task | undefined> {
    const record = await this.#getItem(idempotencyKey(task.agent.issuer, task.agent.id, key));
    if (!record || typeof record.taskId !== "string") return undefined;
    if (typeof record[TTL_ATTRIBUTE] === "number" && record[TTL_ATTRIBUTE] < this.#nowSeconds())
      return undefined;
    const existing = await this.get(record.taskId);
    if (!existing) throw new InternalError("idempotency record points at a missing task");
    return existing;
  }

  async #getItem(key: { pk: string; sk: string }): Promise<Item | undefined> {
    try {
      const out = await this.#client.send(
        new GetCommand({ TableName: this.#tableName, Key: key, ConsistentRead: true }),
      );
      return out.Item;
    } catch (error) {
      throw unavailable(error);
    }
  }

  #nowSeconds(): number {
    return Math.floor(this.#now().getTime() / 1000);
  }
}

/** Statuses in which a task keeps the active slot it was created with. */
function holdsSlot(status: TaskStatus): boolean {
  return status === "active" || status === "pending_approval";
}

function toTask(item: Item): Task {
  return stripKeys(item) as unknown as Task;
}

/** Wraps an SDK failure without repeating its message (which may quote request data). */
const unavailable = (error: unknown) => storeUnavailable("task store", error);

// By name, not `instanceof`: the document client may load its own copy of client-dynamodb.

function isConditionFailure(error: unknown): error is ConditionalCheckFailedException {
  return isConditionalCheckFailed(error);
}

/** Full jitter: 0..min(400, 20·2^attempt) ms, so contending writers spread out. */
function backoff(attempt: number): Promise<void> {
  const ceiling = Math.min(400, 20 * 2 ** attempt);
  return new Promise((done) => setTimeout(done, Math.random() * ceiling));
}
