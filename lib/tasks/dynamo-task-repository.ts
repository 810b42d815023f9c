import type { ConditionalCheckFailedException, TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  type DynamoDBDocumentClient,
  GetCommand,
  TransactWriteCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import {
  ConflictError,
  InternalError,
  JitvError,
  NotFoundError,
  UpstreamUnavailableError,
} from "../domain/errors.js";
import type { Task, TaskStatus } from "../domain/task.js";
import type { CreateTaskResult, TaskMarks, TaskRepository } from "./repository.js";
import {
  idempotencyItem,
  idempotencyKey,
  leaseItem,
  stripKeys,
  TTL_ATTRIBUTE,
  taskItem,
  taskKey,
} from "./table.js";

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
}

type Item = Record<string, unknown>;
type TransactItem = NonNullable<
  ConstructorParameters<typeof TransactWriteCommand>[0]["TransactItems"]
>[number];

/**
 * The DynamoDB adapter of {@link TaskRepository}, on the single table of `table.ts`.
 *
 * A create is one transaction: the task record, its TTL lease and (with an Idempotency-Key) the
 * agent's idempotency record. The idempotency record's condition admits an expired record that
 * DynamoDB TTL has not deleted yet, since TTL deletion can lag by hours.
 *
 * Every DynamoDB failure that is not a domain outcome becomes `UpstreamUnavailableError` with a
 * fixed message (the SDK error is kept only as `cause`).
 */
export class DynamoTaskRepository implements TaskRepository {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #now: () => Date;
  readonly #maxConflictRetries: number;

  constructor(options: DynamoTaskRepositoryOptions) {
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#now = options.now ?? (() => new Date());
    this.#maxConflictRetries = options.maxConflictRetries ?? 8;
  }

  /**
   * Writes the task, its lease and its idempotency record atomically, or returns the agent's
   * live task for the same Idempotency-Key without writing anything.
   * @throws InternalError when the task id already exists or an idempotency record points at a missing task
   * @throws UpstreamUnavailableError when DynamoDB fails or stays contended
   */
  async create(task: Task): Promise<CreateTaskResult> {
    for (let attempt = 0; ; attempt++) {
      const items: TransactItem[] = [
        {
          Put: {
            TableName: this.#tableName,
            Item: taskItem(task),
            ConditionExpression: "attribute_not_exists(pk)",
          },
        },
        { Put: { TableName: this.#tableName, Item: leaseItem(task.taskId, task.expiresAt) } },
      ];
      if (task.idempotencyKey !== undefined) {
        items.push({
          Put: {
            TableName: this.#tableName,
            Item: idempotencyItem({ ...task, idempotencyKey: task.idempotencyKey }),
            ConditionExpression: "attribute_not_exists(pk) OR #ttl < :now",
            ExpressionAttributeNames: { "#ttl": TTL_ATTRIBUTE },
            ExpressionAttributeValues: { ":now": this.#nowSeconds() },
          },
        });
      }
      try {
        await this.#client.send(new TransactWriteCommand({ TransactItems: items }));
        return { created: true, task };
      } catch (error) {
        if (isNamed<TransactionCanceledException>(error, "TransactionCanceledException")) {
          const codes = (error.CancellationReasons ?? []).map((r) => r.Code);
          if (task.idempotencyKey !== undefined && codes[2] === "ConditionalCheckFailed") {
            const existing = await this.#findByIdempotencyKey(task, task.idempotencyKey);
            if (existing) return { created: false, task: existing };
            // The record expired or was deleted after the transaction saw it: write again.
          } else if (codes[0] === "ConditionalCheckFailed") {
            throw new InternalError("task id already exists");
          } else if (!codes.includes("TransactionConflict")) {
            throw unavailable(error);
          }
        } else if (!isNamed(error, "TransactionConflictException")) {
          throw unavailable(error);
        }
        if (attempt >= this.#maxConflictRetries) {
          throw new UpstreamUnavailableError("task store is busy, try again", { cause: error });
        }
        await backoff(attempt);
      }
    }
  }

  /** Reads a task (strongly consistent). Returns `undefined` when there is none. */
  async get(taskId: string): Promise<Task | undefined> {
    const item = await this.#getItem(taskKey(taskId));
    return item?.type === "task" ? (stripKeys(item) as unknown as Task) : undefined;
  }

  /**
   * Marks an `active` or `pending_approval` task `failed` with a reason safe to show its owner.
   * @throws NotFoundError when the task does not exist
   * @throws ConflictError when the task is in another state
   */
  async markFailed(taskId: string, reason: string): Promise<void> {
    try {
      await this.#client.send(
        new UpdateCommand({
          TableName: this.#tableName,
          Key: taskKey(taskId),
          UpdateExpression: "SET #status = :failed, #reason = :reason",
          ConditionExpression: "attribute_exists(pk) AND #status IN (:active, :pending)",
          ExpressionAttributeNames: { "#status": "status", "#reason": "reason" },
          ExpressionAttributeValues: {
            ":failed": "failed",
            ":reason": reason,
            ":active": "active",
            ":pending": "pending_approval",
          },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) {
        const status = error.Item?.status?.S;
        if (status === undefined) throw new NotFoundError("task not found");
        throw new ConflictError(`task is ${status}`);
      }
      throw unavailable(error);
    }
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
    const values: Record<string, unknown> = { ":to": to };
    from.forEach((status, i) => {
      values[`:from${i}`] = status;
    });
    const sets = ["#status = :to"];
    const names: Record<string, string> = { "#status": "status" };
    if (reason !== undefined) {
      sets.push("#reason = :reason");
      names["#reason"] = "reason";
      values[":reason"] = reason;
    }
    if (to === "completed" || to === "revoked" || to === "expired") {
      sets.push("endedAt = if_not_exists(endedAt, :now)");
      values[":now"] = this.#now().toISOString();
    }
    try {
      const out = await this.#client.send(
        new UpdateCommand({
          TableName: this.#tableName,
          Key: taskKey(taskId),
          UpdateExpression: `SET ${sets.join(", ")}`,
          ConditionExpression: `attribute_exists(pk) AND #status IN (${from.map((_, i) => `:from${i}`).join(", ")})`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: "ALL_NEW",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return out.Attributes ? (stripKeys(out.Attributes) as unknown as Task) : undefined;
    } catch (error) {
      if (isConditionFailure(error)) {
        if (error.Item === undefined) throw new NotFoundError("task not found");
        return undefined;
      }
      throw unavailable(error);
    }
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

/** Wraps an SDK failure without repeating its message (which may quote request data). */
function unavailable(error: unknown): JitvError {
  if (error instanceof JitvError) return error;
  return new UpstreamUnavailableError("task store unavailable", { cause: error });
}

// By name, not `instanceof`: the document client may load its own copy of client-dynamodb.
function isNamed<E extends Error>(error: unknown, name: string): error is E {
  return error instanceof Error && error.name === name;
}

function isConditionFailure(error: unknown): error is ConditionalCheckFailedException {
  return isNamed(error, "ConditionalCheckFailedException");
}

/** Full jitter: 0..min(400, 20·2^attempt) ms, so contending writers spread out. */
function backoff(attempt: number): Promise<void> {
  const ceiling = Math.min(400, 20 * 2 ** attempt);
  return new Promise((done) => setTimeout(done, Math.random() * ceiling));
}
