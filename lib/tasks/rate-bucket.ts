import { type ItemKey, type ItemType, selfIndexKeys, TTL_ATTRIBUTE } from "../store/table.js";
import { DEFAULT_VEND_RATE, type VendRateLimit } from "./limits.js";

/** Which conditional write takes a token: the one for an idle (full) bucket, or for a busy one. */
export type BucketBranch = "idle" | "busy";

/**
 * An agent's token bucket as stored (one `rate-bucket` item): the one number that determines it,
 * `nextTokenAt` (epoch ms, GCRA's "theoretical arrival time"). The bucket holds
 * `capacity - (nextTokenAt - now) / interval` tokens, where `interval = 1000 / refillPerSecond`,
 * so elapsed time refills it without any write. Taking a token is one conditional update, never
 * a read-modify-write, and the two updates' conditions exclude each other:
 * - `idle` (`nextTokenAt <= now`, or no item): set `nextTokenAt = now + interval`;
 * - `busy` (`now < nextTokenAt <= now + (capacity - 1) * interval`): add `interval`.
 * When neither holds, the bucket is empty. A refused write returns the item as found, which says
 * whether the other branch applies or how long until the next token ({@link GcraBucket.afterRefusal}).
 * The item expires (TTL) once the bucket would be full again: a missing bucket is a full one.
 *
 * Shared by `DynamoVendRateLimiter` (one update per call) and the vend's transaction
 * (`DynamoTaskRepository.create`), so both draw from the same item with the same rules.
 */
export class GcraBucket {
  readonly capacity: number;
  readonly intervalMs: number;

  /** @throws Error when `capacity` is not a positive integer or `refillPerSecond` not positive */
  constructor(rate: VendRateLimit = {}) {
    const capacity = rate.capacity ?? DEFAULT_VEND_RATE.capacity;
    const refillPerSecond = rate.refillPerSecond ?? DEFAULT_VEND_RATE.refillPerSecond;
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error("capacity must be a positive integer");
    if (!(Number.isFinite(refillPerSecond) && refillPerSecond > 0)) {
      throw new Error("refillPerSecond must be a positive number");
    }
    this.capacity = capacity;
    this.intervalMs = 1000 / refillPerSecond;
  }

  /** The conditional `Update` (input of `UpdateCommand`, or one `TransactWriteItems` entry) of `branch` at `now` (epoch ms). */
  update(tableName: string, key: ItemKey, branch: BucketBranch, now: number) {
    // The bucket is full again by `now + capacity * interval` at the latest: expire it then.
    const ttl = Math.ceil((now + this.capacity * this.intervalMs) / 1000) + 60;
    const names = { "#next": "nextTokenAt", "#ttl": TTL_ATTRIBUTE };
    const common = {
      TableName: tableName,
      Key: key,
      ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
    };
    if (branch === "busy") {
      return {
        ...common,
        UpdateExpression: "SET #next = #next + :interval, #ttl = :ttl",
        ConditionExpression: "#next > :now AND #next <= :limit",
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: {
          ":interval": this.intervalMs,
          ":now": now,
          ":limit": this.#limit(now),
          ":ttl": ttl,
        },
      };
    }
    const index = selfIndexKeys(key);
    return {
      ...common,
      UpdateExpression: `SET #next = :next, #ttl = :ttl, #type = :type, ${Object.keys(index)
        .map((name) => `${name} = :${name}`)
        .join(", ")}`,
      ConditionExpression: "attribute_not_exists(#next) OR #next <= :now",
      ExpressionAttributeNames: { ...names, "#type": "type" },
      ExpressionAttributeValues: {
        ":next": now + this.intervalMs,
        ":now": now,
        ":ttl": ttl,
        ":type": "rate-bucket" satisfies ItemType,
        // Expiring items carry every index key (DynamoDB Local's TTL job; see table.ts).
        ...Object.fromEntries(Object.entries(index).map(([name, v]) => [`:${name}`, v])),
      },
    };
  }

  /**
   * What a refused write's item (as found; `undefined` when there is none) means at `now`: the
   * branch that applies, or the whole seconds (at least 1) until the bucket has a token again.
   */
  afterRefusal(
    found: Record<string, unknown> | undefined,
    now: number,
  ): BucketBranch | { retryAfterSeconds: number } {
    const next = found?.nextTokenAt;
    if (typeof next !== "number" || next <= now) return "idle";
    const limit = this.#limit(now);
    if (next <= limit) return "busy";
    return { retryAfterSeconds: Math.max(1, Math.ceil((next - limit) / 1000)) };
  }

  /** `nextTokenAt` after `branch` took a token from a bucket whose `nextTokenAt` was `before`. */
  after(branch: BucketBranch, before: number | undefined, now: number): number {
    return branch === "idle" || before === undefined ? now + this.intervalMs : before + this.intervalMs;
  }

  /** The branch that applies to a bucket last known to be at `nextTokenAt` (`undefined`: unknown, guess idle). */
  branchFor(nextTokenAt: number | undefined, now: number): BucketBranch {
    return nextTokenAt !== undefined && nextTokenAt > now ? "busy" : "idle";
  }

  #limit(now: number): number {
    return now + (this.capacity - 1) * this.intervalMs;
  }
}
