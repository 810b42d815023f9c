import { randomUUID } from "node:crypto";
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { GetCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { RateLimitedError } from "../../../lib/domain/errors.js";
import type { Task, TaskStatus } from "../../../lib/domain/task.js";
import {
  activeCountKey,
  ensureTable,
  GSI2,
  idempotencyItem,
  leaseItem,
  pruneLeaseItem,
  replayItem,
  statusGsi2pk,
  TTL_ATTRIBUTE,
  tableDefinition,
  taskKey,
} from "../../../lib/store/table.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import { createTestTable, localClientConfig, type TestTable } from "../../support/dynamodb.js";
import { makeTask } from "./fixtures.js";

let table: TestTable;
let repo: DynamoTaskRepository;

beforeAll(async () => {
  table = await createTestTable();
  repo = new DynamoTaskRepository({ client: table.doc, tableName: table.tableName });
});

/** Ids of the tasks of one template (unique per test) under `STATUS#<status>` in gsi2. */
async function idsInStatus(status: TaskStatus, template: string): Promise<string[]> {
  const out = await table.doc.send(
    new QueryCommand({
      TableName: table.tableName,
      IndexName: GSI2,
      KeyConditionExpression: "gsi2pk = :status",
      FilterExpression: "template = :template",
      ExpressionAttributeValues: { ":status": statusGsi2pk(status), ":template": template },
    }),
  );
  return (out.Items ?? []).map((item) => String(item.taskId));
}

async function activeCount(task: Task): Promise<number | undefined> {
  const out = await table.doc.send(
    new GetCommand({
      TableName: table.tableName,
      Key: activeCountKey(task.template, task.agent.issuer, task.agent.id),
      ConsistentRead: true,
    }),
  );
  return out.Item?.active as number | undefined;
}

async function rawTask(taskId: string) {
  const out = await table.doc.send(
    new GetCommand({ TableName: table.tableName, Key: taskKey(taskId), ConsistentRead: true }),
  );
  return out.Item;
}

/** A task of a template and agent no other test uses. */
function freshTask(overrides: Partial<Task> = {}): Task {
  return makeTask({
    template: `tpl-${randomUUID()}`,
    agent: { issuer: "https://issuer.example", id: `agent-${randomUUID()}` },
    ...overrides,
  });
}

describe("the status index (gsi2)", () => {
  it("exists on a fresh table, and ensureTable refuses a table made without it", async () => {
    const { Table } = await table.client.send(new DescribeTableCommand({ TableName: table.tableName }));
    expect(Table?.GlobalSecondaryIndexes?.find((i) => i.IndexName === GSI2)).toMatchObject({
      KeySchema: [
        { AttributeName: "gsi2pk", KeyType: "HASH" },
        { AttributeName: "gsi2sk", KeyType: "RANGE" },
      ],
      Projection: { ProjectionType: "ALL" },
    });

    const client = new DynamoDBClient(localClientConfig());
    const oldName = `jitv-test-${randomUUID()}`;
    const current = tableDefinition(oldName);
    await client.send(
      new CreateTableCommand({
        ...current,
        AttributeDefinitions: current.AttributeDefinitions?.filter(
          (a) => !a.AttributeName?.startsWith("gsi2"),
        ),
        GlobalSecondaryIndexes: current.GlobalSecondaryIndexes?.filter((i) => i.IndexName !== GSI2),
      }),
    );
    await expect(ensureTable(client, oldName)).rejects.toThrow(/without index gsi2/);
  });

  it("gives every item that expires the gsi2 key attributes DynamoDB Local's TTL job needs", () => {
    const task = makeTask({ idempotencyKey: "k" });
    const expiring = [
      leaseItem(task.taskId, task.expiresAt),
      idempotencyItem({ ...task, idempotencyKey: "k" }),
      replayItem("https://issuer.example", "jti", 1, 2),
      pruneLeaseItem(task.roleArn, task.taskId, task.expiresAt),
    ];
    for (const item of expiring) {
      expect(item).toHaveProperty(TTL_ATTRIBUTE);
      expect(item).toMatchObject({ gsi1pk: item.pk, gsi1sk: item.sk, gsi2pk: item.pk, gsi2sk: item.sk });
    }
  });

  it("files a task under its status and moves it with every transition", async () => {
    const task = freshTask({ status: "pending_approval" });
    await repo.create(task);
    expect(await idsInStatus("pending_approval", task.template)).toEqual([task.taskId]);

    await repo.transition(task.taskId, ["pending_approval"], "active");
    expect(await idsInStatus("pending_approval", task.template)).toEqual([]);
    expect(await idsInStatus("active", task.template)).toEqual([task.taskId]);

    await repo.transition(task.taskId, ["active"], "completed");
    expect(await idsInStatus("active", task.template)).toEqual([]);
    expect(await idsInStatus("completed", task.template)).toEqual([task.taskId]);
    expect(await rawTask(task.taskId)).toMatchObject({
      gsi2pk: "STATUS#completed",
      gsi2sk: `${task.createdAt}#${task.taskId}`,
    });
  });

  it("leaves the index alone when a transition does not happen", async () => {
    const task = freshTask();
    await repo.create(task);

    await expect(repo.transition(task.taskId, ["pending_approval"], "denied")).resolves.toBeUndefined();

    expect(await idsInStatus("active", task.template)).toEqual([task.taskId]);
    expect(await idsInStatus("denied", task.template)).toEqual([]);
  });

  it("moves a failed task to STATUS#failed", async () => {
    const task = freshTask();
    await repo.create(task);

    await repo.markFailed(task.taskId, "STS failed");

    expect(await idsInStatus("active", task.template)).toEqual([]);
    expect(await idsInStatus("failed", task.template)).toEqual([task.taskId]);
  });
});

describe("active slots (maxActivePerAgent)", () => {
  it("lets exactly maxActive of 20 concurrent creates through; the others are rate_limited", async () => {
    const first = freshTask();
    const tasks = Array.from({ length: 20 }, () =>
      makeTask({ template: first.template, agent: first.agent }),
    );

    const results = await Promise.allSettled(tasks.map((task) => repo.create(task, { maxActive: 3 })));

    const created = results.filter((r) => r.status === "fulfilled");
    const refused = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
    expect(created).toHaveLength(3);
    expect(refused).toHaveLength(17);
    for (const error of refused) {
      expect(error).toBeInstanceOf(RateLimitedError);
      expect(error).toMatchObject({ code: "rate_limited", status: 429 });
    }
    expect(await activeCount(first)).toBe(3);
    expect(await idsInStatus("active", first.template)).toHaveLength(3);
  });

  it("frees a slot when a task completes, so the next create succeeds", async () => {
    const a = freshTask();
    const b = makeTask({ template: a.template, agent: a.agent });
    const c = makeTask({ template: a.template, agent: a.agent });
    await repo.create(a, { maxActive: 2 });
    await repo.create(b, { maxActive: 2 });
    await expect(repo.create(c, { maxActive: 2 })).rejects.toThrow("too many active tasks for this template");

    const ended = await repo.transition(a.taskId, ["active"], "completed");

    expect(ended).toMatchObject({ taskId: a.taskId, status: "completed", endedAt: expect.any(String) });
    expect(ended).not.toHaveProperty("activeSlot");
    await expect(repo.get(a.taskId)).resolves.toEqual(ended);
    expect(await activeCount(a)).toBe(1);
    await expect(repo.create(c, { maxActive: 2 })).resolves.toMatchObject({ created: true });
    expect(await activeCount(a)).toBe(2);
  });

  it("frees a slot once however many callers end the task at the same time", async () => {
    const task = freshTask();
    await repo.create(task, { maxActive: 5 });

    const outcomes = await Promise.all([
      repo.transition(task.taskId, ["active"], "completed"),
      repo.transition(task.taskId, ["active", "pending_approval"], "revoked", "admin"),
      repo.transition(task.taskId, ["active", "pending_approval"], "expired"),
      repo.markFailed(task.taskId, "boom").then(
        () => "failed",
        () => undefined,
      ),
    ]);
    // Later moves between ended states (the lifecycle's revocation_failed) free nothing more.
    await repo.transition(task.taskId, ["completed", "revoked", "expired", "failed"], "revocation_failed");

    expect(outcomes.filter((o) => o !== undefined)).toHaveLength(1);
    expect(await activeCount(task)).toBe(0);
    expect(await rawTask(task.taskId)).toMatchObject({ status: "revocation_failed" });
    expect(await rawTask(task.taskId)).not.toHaveProperty("activeSlot");
  });

  it("keeps the slot from pending_approval to active and frees it on denial or failure", async () => {
    const pending = freshTask({ status: "pending_approval" });
    const denied = makeTask({ template: pending.template, agent: pending.agent, status: "pending_approval" });
    const failing = makeTask({ template: pending.template, agent: pending.agent });
    for (const task of [pending, denied, failing]) await repo.create(task, { maxActive: 3 });
    expect(await activeCount(pending)).toBe(3);

    await repo.transition(pending.taskId, ["pending_approval"], "active");
    expect(await activeCount(pending)).toBe(3);

    await repo.transition(denied.taskId, ["pending_approval"], "denied", "approval timed out");
    expect(await activeCount(pending)).toBe(2);

    await repo.markFailed(failing.taskId, "could not schedule the task's lifecycle");
    expect(await activeCount(pending)).toBe(1);
    await expect(repo.get(failing.taskId)).resolves.toMatchObject({
      status: "failed",
      reason: "could not schedule the task's lifecycle",
    });
  });

  it("answers an idempotent replay at the limit with the existing task, taking no slot", async () => {
    const task = freshTask({ idempotencyKey: "replay-me" });
    await repo.create(task, { maxActive: 1 });

    const again = await repo.create(
      { ...makeTask({ template: task.template, agent: task.agent }), idempotencyKey: "replay-me" },
      { maxActive: 1 },
    );

    expect(again).toEqual({ created: false, task });
    expect(await activeCount(task)).toBe(1);
  });

  it("counts per template and per agent, and takes no slot without maxActive", async () => {
    const task = freshTask();
    const otherAgent = makeTask({
      template: task.template,
      agent: { ...task.agent, id: `${task.agent.id}-2` },
    });
    const otherTemplate = makeTask({ template: `${task.template}-2`, agent: task.agent });
    const unlimited = makeTask({ template: task.template, agent: task.agent });
    await repo.create(task, { maxActive: 1 });

    await expect(repo.create(otherAgent, { maxActive: 1 })).resolves.toMatchObject({ created: true });
    await expect(repo.create(otherTemplate, { maxActive: 1 })).resolves.toMatchObject({ created: true });
    await expect(repo.create(unlimited)).resolves.toMatchObject({ created: true });
    await repo.transition(unlimited.taskId, ["active"], "completed");

    expect(await activeCount(task)).toBe(1);
    expect(await rawTask(unlimited.taskId)).not.toHaveProperty("activeSlot");
  });

  it("refuses a maxActive that is not a positive integer", async () => {
    await expect(repo.create(freshTask(), { maxActive: 0 })).rejects.toMatchObject({ code: "internal" });
  });
});
