import type { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  type DynamoDBDocumentClient,
  GetCommand,
  TransactWriteCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { UpstreamUnavailableError } from "../domain/errors.js";
import type { Task } from "../domain/task.js";
import { isConditionalCheckFailed } from "../store/dynamo-errors.js";
import {
  idempotencyKey,
  leaseItem,
  statusGsi2pk,
  stripKeys,
  TTL_ATTRIBUTE,
  taskKey,
  toEpochSeconds,
} from "../store/table.js";
import type { ApprovalStore } from "./approval-store.js";

/** {@link ApprovalStore} on the task records of the single table. */
export class DynamoApprovalStore implements ApprovalStore {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;

  constructor(props: { client: DynamoDBDocumentClient; tableName: string }) {
    this.#client = props.client;
    this.#tableName = props.tableName;
  }

  async recordApproval(taskId: string, approver: string): Promise<readonly string[] | undefined> {
    try {
      const out = await this.#client.send(
        new UpdateCommand({
          TableName: this.#tableName,
          Key: taskKey(taskId),
          // A list, not a set, so approvals keep their order; the condition keeps it distinct.
          UpdateExpression: "SET approvals = list_append(if_not_exists(approvals, :empty), :me)",
          ConditionExpression:
            "attribute_exists(pk) AND #status = :pending AND (attribute_not_exists(approvals) OR NOT contains(approvals, :approver))",
          ExpressionAttributeNames: { "#status": "status" },
          ExpressionAttributeValues: {
            ":empty": [],
            ":me": [approver],
            ":approver": approver,
            ":pending": "pending_approval",
          },
          ReturnValues: "ALL_NEW",
        }),
      );
      return (out.Attributes?.approvals as string[] | undefined) ?? [];
    } catch (error) {
      if (isConditionalCheckFailed(error)) return undefined;
      throw new UpstreamUnavailableError("task store unavailable", { cause: error });
    }
  }

  async activate(
    task: Pick<Task, "taskId" | "agent" | "idempotencyKey">,
    expiresAt: string,
  ): Promise<Task | undefined> {
    const { taskId } = task;
    const idem = task.idempotencyKey;
    try {
      await this.#client.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.#tableName,
                Key: taskKey(taskId),
                UpdateExpression:
                  "SET #status = :active, expiresAt = :expiresAt, activatedAt = :now, gsi2pk = :index",
                ConditionExpression: "attribute_exists(pk) AND #status = :pending",
                ExpressionAttributeNames: { "#status": "status" },
                ExpressionAttributeValues: {
                  ":active": "active",
                  ":pending": "pending_approval",
                  ":expiresAt": expiresAt,
                  ":index": statusGsi2pk("active"),
                  ":now": new Date().toISOString(),
                },
              },
            },
            // The backstop now fires at the task's real deadline, not the approval deadline.
            { Put: { TableName: this.#tableName, Item: leaseItem(taskId, expiresAt) } },
            // The key's record lived until the approval deadline; it now lives as long as the task.
            ...(idem === undefined
              ? []
              : [
                  {
                    Update: {
                      TableName: this.#tableName,
                      Key: idempotencyKey(task.agent.issuer, task.agent.id, idem),
                      UpdateExpression: "SET #ttl = :ttl",
                      ConditionExpression: "taskId = :taskId",
                      ExpressionAttributeNames: { "#ttl": TTL_ATTRIBUTE },
                      ExpressionAttributeValues: { ":ttl": toEpochSeconds(expiresAt), ":taskId": taskId },
                    },
                  },
                ]),
          ],
        }),
      );
    } catch (error) {
      const reasons = (error as TransactionCanceledException).CancellationReasons ?? [];
      if (reasons[0]?.Code === "ConditionalCheckFailed") return undefined;
      throw new UpstreamUnavailableError("task store unavailable", { cause: error });
    }
    const out = await this.#client.send(
      new GetCommand({ TableName: this.#tableName, Key: taskKey(taskId), ConsistentRead: true }),
    );
    return out.Item ? (stripKeys(out.Item) as unknown as Task) : undefined;
  }
}
