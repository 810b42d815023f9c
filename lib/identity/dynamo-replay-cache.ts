import { type DynamoDBDocumentClient, PutCommand } from "@aws-sdk/lib-dynamodb";
import { InvalidTokenError, UpstreamUnavailableError } from "../domain/errors.js";
import { isConditionalCheckFailed } from "../store/dynamo-errors.js";
import { replayItem, TTL_ATTRIBUTE } from "../store/table.js";
import type { ReplayCache } from "./replay-cache.js";

/** Options of {@link DynamoReplayCache}. */
export interface DynamoReplayCacheOptions {
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /**
   * How long past the token's `exp` (and past now) an entry is kept. The verifier accepts a token
   * up to its clock tolerance after `exp`; without this margin such a token could be replayed in
   * that window. Must be at least the largest `clockToleranceSeconds` of any issuer profile.
   * @default 300
   */
  readonly graceSeconds?: number;
}

/**
 * The DynamoDB adapter of {@link ReplayCache}: one conditional Put per `jti`, on the single table
 * (`pk = JTI#<issuer>#<jti>`). An entry whose `ttlEpoch` has passed no longer blocks, even if
 * DynamoDB TTL has not deleted it yet.
 */
export class DynamoReplayCache implements ReplayCache {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #now: () => Date;
  readonly #graceSeconds: number;

  constructor(options: DynamoReplayCacheOptions) {
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#now = options.now ?? (() => new Date());
    this.#graceSeconds = options.graceSeconds ?? 300;
  }

  /**
   * Records the token id as used until `max(expiresAt, now) + graceSeconds`.
   * @param expiresAt the token's `exp` in epoch seconds
   * @throws InvalidTokenError ("token already used") when the jti was already consumed
   * @throws UpstreamUnavailableError when DynamoDB fails
   */
  async consume(issuer: string, jti: string, expiresAt: number): Promise<void> {
    const now = Math.floor(this.#now().getTime() / 1000);
    try {
      await this.#client.send(
        new PutCommand({
          TableName: this.#tableName,
          Item: replayItem(issuer, jti, expiresAt, Math.max(Math.ceil(expiresAt), now) + this.#graceSeconds),
          ConditionExpression: "attribute_not_exists(pk) OR #ttl < :now",
          ExpressionAttributeNames: { "#ttl": TTL_ATTRIBUTE },
          ExpressionAttributeValues: { ":now": now },
        }),
      );
    } catch (error) {
      if (isConditionalCheckFailed(error)) {
        throw new InvalidTokenError("token already used");
      }
      throw new UpstreamUnavailableError("replay cache unavailable", { cause: error });
    }
  }
}
