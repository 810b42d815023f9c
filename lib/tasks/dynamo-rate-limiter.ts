import { type DynamoDBDocumentClient, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { JitvError, RateLimitedError, UpstreamUnavailableError } from "../domain/errors.js";
import type { AgentRef } from "../domain/task.js";
import { isConditionalCheckFailed } from "../store/dynamo-errors.js";
import { rateBucketKey } from "../store/table.js";
import type { RateBucket, RateLimiter, VendRateLimit } from "./limits.js";
import { type BucketBranch, GcraBucket } from "./rate-bucket.js";

/** Options of {@link DynamoVendRateLimiter}; the bucket defaults to `DEFAULT_VEND_RATE`. */
export interface DynamoVendRateLimiterOptions extends VendRateLimit {
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /**
   * How many times a consumption is retried when the bucket changed between its conditional
   * writes (it emptied into idleness, or DynamoDB TTL deleted an idle bucket).
   * @default 3
   */
  readonly maxRetries?: number;
}

/**
 * The per-agent rates (CONTRACT.md section 3, `429 rate_limited`): a token bucket per agent and
 * kind in DynamoDB (`pk = RATE#<issuer>#<agent>`), stored and updated as {@link GcraBucket}
 * describes. The vend itself takes its token inside the task's transaction
 * (`DynamoTaskRepository.create`); this adapter serves the separate calls (refreshes).
 */
export class DynamoVendRateLimiter implements RateLimiter {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #now: () => Date;
  readonly #bucket: GcraBucket;
  readonly #maxRetries: number;

  /** @throws Error when `capacity` is not a positive integer or `refillPerSecond` not positive */
  constructor(options: DynamoVendRateLimiterOptions) {
    this.#bucket = new GcraBucket(options);
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#now = options.now ?? (() => new Date());
    this.#maxRetries = options.maxRetries ?? 3;
  }

  /**
   * Takes one token from the agent's bucket.
   * @throws RateLimitedError (`Retry-After`: whole seconds until the next token, at least 1) when the bucket is empty
   * @throws UpstreamUnavailableError when DynamoDB fails
   * @example
   * await limiter.consume({ issuer: agent.issuer, id: agent.id }, "refresh");
   * @param bucket `vend` (new tasks) or `refresh` (credentials of a running task): separate buckets of
   *   the same size, so refreshes are bounded too and a burst of vends never starves a long task's refresh
   */
  async consume(agent: AgentRef, bucket: RateBucket = "vend"): Promise<void> {
    const key = rateBucketKey(agent.issuer, agent.id, bucket);
    let branch: BucketBranch = "idle";
    for (let attempt = 0; ; attempt++) {
      const now = this.#now().getTime();
      const refused = await this.#update(this.#bucket.update(this.#tableName, key, branch, now));
      if (refused === undefined) return;
      const next = this.#bucket.afterRefusal(refused.found, now);
      if (typeof next === "object") {
        throw new RateLimitedError(
          `too many ${bucket === "vend" ? "vends" : "credential refreshes"} by this agent, slow down`,
          next.retryAfterSeconds,
        );
      }
      // The bucket is in the other state than this write assumed: write again for that one.
      if (attempt >= this.#maxRetries) throw new UpstreamUnavailableError("rate limiter is busy, try again");
      branch = next;
    }
  }

  /** Returns `undefined` when the write took a token, else the item as found (absent when missing). */
  async #update(
    input: ConstructorParameters<typeof UpdateCommand>[0],
  ): Promise<{ found?: Record<string, unknown> } | undefined> {
    try {
      await this.#client.send(new UpdateCommand(input));
      return undefined;
    } catch (error) {
      if (isConditionalCheckFailed(error)) {
        const item = (error as { Item?: Parameters<typeof unmarshall>[0] }).Item;
        return item === undefined ? {} : { found: unmarshall(item) };
      }
      if (error instanceof JitvError) throw error;
      throw new UpstreamUnavailableError("rate limiter unavailable", { cause: error });
    }
  }
}
