import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { TaskStatus } from "../domain/task.js";
import { storeUnavailable } from "../store/dynamo-errors.js";
import { queryAll } from "../store/dynamo-query.js";
import { GSI2, statusGsi2pk } from "../store/table.js";
import type { OverdueTask, OverdueTasks } from "./overdue-tasks.js";

/** Statuses whose tasks still hold credentials (or may be granted them). */
const LIVE: readonly TaskStatus[] = ["active", "pending_approval"];
/** Statuses of ended tasks whose lifecycle still has to revoke, rotate and close. */
const ENDED: readonly TaskStatus[] = ["completed", "revoked", "expired", "revocation_failed"];
/**
 * How far back ended tasks are looked for (by creation time, the status index's sort key): the
 * sweep reads only this window of history, however many tasks ended before it.
 */
const ENDED_LOOKBACK_MS = 7 * 24 * 3600 * 1000;

/** The status index (`gsi2`) read for {@link OverdueTasks}: one query per status, not closed only. */
export class DynamoOverdueTasks implements OverdueTasks {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #endedLookbackMs: number;

  constructor(props: {
    readonly client: DynamoDBDocumentClient;
    readonly tableName: string;
    /** How far back (by creation) ended tasks are read; `Infinity`: all of them. @default 7 days */
    readonly endedLookbackMs?: number;
  }) {
    this.#client = props.client;
    this.#tableName = props.tableName;
    this.#endedLookbackMs = props.endedLookbackMs ?? ENDED_LOOKBACK_MS;
  }

  async unclosed(now: Date): Promise<OverdueTask[]> {
    const createdSince = Number.isFinite(this.#endedLookbackMs)
      ? new Date(now.getTime() - this.#endedLookbackMs).toISOString()
      : undefined;
    const query = (status: TaskStatus, since?: string) =>
      queryAll(
        this.#client,
        {
          TableName: this.#tableName,
          IndexName: GSI2,
          KeyConditionExpression: since === undefined ? "gsi2pk = :pk" : "gsi2pk = :pk AND gsi2sk >= :since",
          FilterExpression: "attribute_not_exists(closedAt)",
          ProjectionExpression: "taskId, #status, expiresAt, endedAt",
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: { ":pk": statusGsi2pk(status), ...(since ? { ":since": since } : {}) },
        },
        (error) => storeUnavailable("task store", error),
      );
    const pages = await Promise.all([
      ...LIVE.map((status) => query(status)),
      ...ENDED.map((status) => query(status, createdSince)),
    ]);
    return pages.flat() as OverdueTask[];
  }

  async list(input: {
    now: Date;
    overdueAfterSeconds: number;
    unclosedAfterSeconds: number;
  }): Promise<OverdueTask[]> {
    const now = input.now.getTime();
    const deadlineBefore = new Date(now - input.overdueAfterSeconds * 1000).toISOString();
    const endedBefore = new Date(now - input.unclosedAfterSeconds * 1000).toISOString();
    return (await this.unclosed(input.now)).filter((task) =>
      LIVE.includes(task.status)
        ? task.expiresAt < deadlineBefore
        : // Ended and past its deadline too (e.g. a backstop that ended it, then failed): as a live
          // one. Ended early: once its lifecycle had time to finish (no endedAt: from the deadline).
          task.expiresAt < deadlineBefore || (task.endedAt ?? task.expiresAt) < endedBefore,
    );
  }
}
