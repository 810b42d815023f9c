import { type DynamoDBDocumentClient, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { JitvError, RateLimitedError, UpstreamUnavailableError } from "../domain/errors.js";
import type { AgentRef } from "../domain/task.js";
import { isConditionalCheckFailed } from "../store/dynamo-errors.js";
import { type ItemType, rateBucketKey, selfIndexKeys, TTL_ATTRIBUTE } from "../store/table.js";
import { DEFAULT_VEND_RATE, type RateBucket, type RateLimiter, type VendRateLimit } from "./limits.js";

/** Options of {@link DynamoVendRateLimiter}; the bucket defaults to {@link DEFAULT_VEND_RATE}. */
export interface DynamoVendRateLimiterOptions extends VendRateLimit {
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /**
   * How many times a consumption is retried when the bucket item disappears (DynamoDB TTL
   * deleted an idle bucket) between its two conditional writes.
   * @default 3
   */
  readonly maxRetries?: number;
}

/**
 * The per-agent vend rate (CONTRACT.md section 3, `429 rate_limited`): a token bucket per agent
 * in DynamoDB, one `rate-bucket` item per agent (`pk = RATE#<issuer>#<agent>`, `sk = BUCKET`).
 *
 * The bucket is stored as the one number that determines it, `nextTokenAt` (epoch ms, GCRA's
 * "theoretical arrival time"): the bucket holds `capacity - (nextTokenAt - now) / interval`
 * tokens, where `interval = 1000 / refillPerSecond`, so elapsed time refills it without any
 * write. Consuming a token is a conditional update and never a read-modify-write, so concurrent
 * vends cannot both take the last token and need no retry loop:
 * - an idle (full) bucket, `nextTokenAt <= now` or no item: set `nextTokenAt = now + interval`,
 *   on condition that it is still idle;
 * - otherwise `nextTokenAt = nextTokenAt + interval` (an atomic add), on condition that a token
 *   is left: `nextTokenAt <= now + (capacity - 1) * interval`.
 * When neither condition holds, the bucket is empty and `Retry-After` is the time until its
 * next token. The item expires (TTL) once the bucket would be full again: a missing bucket is
 * a full one.
 */
export class DynamoVendRateLimiter implements RateLimiter {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #now: () => Date;
  readonly #capacity: number;
  readonly #intervalMs: number;
  readonly #maxRetries: number;

  /** @throws Error when `capacity` is not a positive integer or `refillPerSecond` not positive */
  constructor(options: DynamoVendRateLimiterOptions) {
    const capacity = options.capacity ?? DEFAULT_VEND_RATE.capacity;
    const refillPerSecond = options.refillPerSecond ?? DEFAULT_VEND_RATE.refillPerSecond;
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error("capacity must be a positive integer");
    if (!(Number.isFinite(refillPerSecond) && refillPerSecond > 0)) {
      throw new Error("refillPerSecond must be a positive number");
    }
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#now = options.now ?? (() => new Date());
    this.#capacity = capacity;
    this.#intervalMs = 1000 / refillPerSecond;
    this.#maxRetries = options.maxRetries ?? 3;
  }

  /**
   * Takes one token from the agent's bucket.
   * @throws RateLimitedError (`Retry-After`: whole seconds until the next token, at least 1) when the bucket is empty
   * @throws UpstreamUnavailableError when DynamoDB fails
   * @example
   * await limiter.consume({ issuer: agent.issuer, id: agent.id }); // before the vend writes anything
   * @param bucket `vend` (new tasks) or `refresh` (credentials of a running task): separate buckets of
   *   the same size, so refreshes are bounded too and a burst of vends never starves a long task's refresh
   */
  async consume(agent: AgentRef, bucket: RateBucket = "vend"): Promise<void> {
    const key = rateBucketKey(agent.issuer, agent.id, bucket);
    for (let attempt = 0; ; attempt++) {
      const now = this.#now().getTime();
      // The bucket is full again by `now + capacity * interval` at the latest: expire it then.
      const ttl = Math.ceil((now + this.#capacity * this.#intervalMs) / 1000) + 60;
      const common = {
        TableName: this.#tableName,
        Key: key,
        ExpressionAttributeNames: { "#next": "nextTokenAt", "#ttl": TTL_ATTRIBUTE },
      };
      const idle = await this.#update({
        ...common,
        UpdateExpression: `SET #next = :next, #ttl = :ttl, #type = :type, ${Object.keys(selfIndexKeys(key))
          .map((name) => `${name} = :${name}`)
          .join(", ")}`,
        ConditionExpression: "attribute_not_exists(#next) OR #next <= :now",
        ExpressionAttributeNames: { ...common.ExpressionAttributeNames, "#type": "type" },
        ExpressionAttributeValues: {
          ":next": now + this.#intervalMs,
          ":now": now,
          ":ttl": ttl,
          ":type": "rate-bucket" satisfies ItemType,
          // Expiring items carry every index key (DynamoDB Local's TTL job; see table.ts).
          ...Object.fromEntries(Object.entries(selfIndexKeys(key)).map(([name, v]) => [`:${name}`, v])),
        },
      });
      if (idle.ok) return;

      const limit = now + (this.#capacity - 1) * this.#intervalMs;
      const busy = await this.#update({
        ...common,
        UpdateExpression: "SET #next = #next + :interval, #ttl = :ttl",
        ConditionExpression: "#next <= :limit",
        ExpressionAttributeValues: { ":interval": this.#intervalMs, ":limit": limit, ":ttl": ttl },
      });
      if (busy.ok) return;
      const nextTokenAt = busy.found?.nextTokenAt;
      if (typeof nextTokenAt === "number") {
        const waitMs = nextTokenAt - limit;
        throw new RateLimitedError(
          `too many ${bucket === "vend" ? "vends" : "credential refreshes"} by this agent, slow down`,
          Math.max(1, Math.ceil(waitMs / 1000)),
        );
      }
      // The bucket vanished (TTL) between the two writes: it is full again, start over.
      if (attempt >= this.#maxRetries) {
        throw new UpstreamUnavailableError("rate limiter is busy, try again");
      }
    }
  }

  async #update(
    input: ConstructorParameters<typeof UpdateCommand>[0],
  ): Promise<{ ok: true } | { ok: false; found?: Record<string, unknown> }> {
    try {
      await this.#client.send(
        new UpdateCommand({ ...input, ReturnValuesOnConditionCheckFailure: "ALL_OLD" }),
      );
      return { ok: true };
    } catch (error) {
      if (isConditionalCheckFailed(error)) {
        const item = (error as { Item?: Parameters<typeof unmarshall>[0] }).Item;
        return { ok: false, ...(item === undefined ? {} : { found: unmarshall(item) }) };
      }
      if (error instanceof JitvError) throw error;
      throw new UpstreamUnavailableError("rate limiter unavailable", { cause: error });
    }
  }
}
