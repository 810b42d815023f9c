import { DeleteCommand, type DynamoDBDocumentClient, PutCommand } from "@aws-sdk/lib-dynamodb";
import { isConditionalCheckFailed, storeUnavailable } from "../store/dynamo-errors.js";
import { queryAll } from "../store/dynamo-query.js";
import {
  driftDenialKey,
  driftDenialPk,
  driftItem,
  driftSeenKey,
  TTL_ATTRIBUTE,
  toEpochSeconds,
} from "../store/table.js";
import type { DriftCounters } from "./counters.js";
import type { DeniedCall } from "./rules.js";

/**
 * The DynamoDB adapter of {@link DriftCounters} on the single table: a `drift-seen` item per
 * CloudTrail event (one conditional Put), a `drift-denial` item per AccessDenied call of a task,
 * counted with one consistent query of the window's `sk` range. A seen marker whose `ttlEpoch`
 * has passed no longer counts, even before DynamoDB TTL deletes it.
 */
export class DynamoDriftCounters implements DriftCounters {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #now: () => Date;

  constructor(options: { client: DynamoDBDocumentClient; tableName: string; now?: () => Date }) {
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#now = options.now ?? (() => new Date());
  }

  async markSeen(eventId: string, until: Date): Promise<boolean> {
    try {
      await this.#client.send(
        new PutCommand({
          TableName: this.#tableName,
          Item: driftItem("drift-seen", driftSeenKey(eventId), toEpochSeconds(until.toISOString()), {
            eventId,
          }),
          ConditionExpression: "attribute_not_exists(pk) OR #ttl < :now",
          ExpressionAttributeNames: { "#ttl": TTL_ATTRIBUTE },
          ExpressionAttributeValues: { ":now": Math.floor(this.#now().getTime() / 1000) },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionalCheckFailed(error)) return false;
      throw storeUnavailable("drift store", error);
    }
  }

  async forgetSeen(eventId: string): Promise<void> {
    await this.#client
      .send(new DeleteCommand({ TableName: this.#tableName, Key: driftSeenKey(eventId) }))
      .catch((error: unknown) => {
        throw storeUnavailable("drift store", error);
      });
  }

  async recordDenied(
    taskId: string,
    call: DeniedCall,
    window: { readonly from: string; readonly to: string },
    until: Date,
  ): Promise<DeniedCall[]> {
    const key = driftDenialKey(taskId, call.eventTime, call.eventId);
    await this.#client
      .send(
        new PutCommand({
          TableName: this.#tableName,
          Item: driftItem("drift-denial", key, toEpochSeconds(until.toISOString()), { ...call, taskId }),
        }),
      )
      .catch((error: unknown) => {
        throw storeUnavailable("drift store", error);
      });
    const items = await queryAll(
      this.#client,
      {
        TableName: this.#tableName,
        KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to",
        // `sk` is `<eventTime>#<eventID>`: every event of the last instant sorts below `~`.
        ExpressionAttributeValues: {
          ":pk": driftDenialPk(taskId),
          ":from": window.from,
          ":to": `${window.to}~`,
        },
        ConsistentRead: true,
      },
      (error) => storeUnavailable("drift store", error),
    );
    return items.map((item) => ({
      eventId: String(item.eventId),
      eventTime: String(item.eventTime),
      action: String(item.action),
    }));
  }
}
