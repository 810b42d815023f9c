import { DynamoDBClient, TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import {
  ConflictError,
  InternalError,
  NotFoundError,
  UpstreamUnavailableError,
} from "../../../lib/domain/errors.js";
import type { Task } from "../../../lib/domain/task.js";
import {
  agentTasksGsi1pk,
  GSI1,
  idempotencyItem,
  idempotencyKey,
  leaseKey,
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

async function rawItem(key: { pk: string; sk: string }) {
  const out = await table.doc.send(
    new GetCommand({ TableName: table.tableName, Key: key, ConsistentRead: true }),
  );
  return out.Item;
}

async function tasksOfAgent(issuer: string, agentId: string) {
  const out = await table.doc.send(
    new QueryCommand({
      TableName: table.tableName,
      IndexName: GSI1,
      KeyConditionExpression: "gsi1pk = :agent",
      ExpressionAttributeValues: { ":agent": agentTasksGsi1pk(issuer, agentId) },
    }),
  );
  return out.Items ?? [];
}

/** A fresh agent per test, so gsi1 queries only see that test's tasks. */
function agent(): Task["agent"] {
  return { issuer: "https://issuer.example", id: `agent-${Math.random().toString(36).slice(2)}` };
}

describe("DynamoTaskRepository create/get", () => {
  it("round-trips a task, optional fields included", async () => {
    const task = makeTask({
      zone: "customer",
      onBehalfOf: { issuer: "https://idp.example", user: "alice", tenant: "acme" },
      purpose: "summarise Q3 reports",
      idempotencyKey: "key-1",
      agent: agent(),
    });

    await expect(repo.create(task)).resolves.toEqual({ created: true, task });
    await expect(repo.get(task.taskId)).resolves.toEqual(task);
  });

  it("stores a task whose optional fields are explicitly undefined", async () => {
    const task = makeTask({ purpose: undefined, onBehalfOf: undefined, reason: undefined });

    await repo.create(task);

    const stored = await repo.get(task.taskId);
    expect(stored).toEqual(task);
    expect(stored).not.toHaveProperty("purpose");
  });

  it("returns undefined for an unknown task and never returns key attributes", async () => {
    await expect(repo.get("tsk_unknown")).resolves.toBeUndefined();

    const task = makeTask();
    await repo.create(task);
    const stored = await repo.get(task.taskId);
    for (const name of ["pk", "sk", "type", "gsi1pk", "gsi1sk"]) expect(stored).not.toHaveProperty(name);
  });

  it("writes the TTL lease expiring at the task's deadline, rounded up to the second", async () => {
    const expiresAt = new Date(Math.floor(Date.now() / 1000) * 1000 + 900_500).toISOString();
    const task = makeTask({ expiresAt });

    await repo.create(task);

    expect(await rawItem(leaseKey(task.taskId))).toEqual({
      ...leaseKey(task.taskId),
      gsi1pk: leaseKey(task.taskId).pk,
      gsi1sk: leaseKey(task.taskId).sk,
      gsi2pk: leaseKey(task.taskId).pk,
      gsi2sk: leaseKey(task.taskId).sk,
      gsi3pk: leaseKey(task.taskId).pk,
      gsi3sk: leaseKey(task.taskId).sk,
      type: "lease",
      leaseKind: "task",
      taskId: task.taskId,
      ttlEpoch: Math.ceil(Date.parse(expiresAt) / 1000),
    });
  });

  it("indexes the task under its agent in creation order", async () => {
    const owner = agent();
    const first = makeTask({ agent: owner, createdAt: "2026-01-01T00:00:00.000Z" });
    const second = makeTask({ agent: owner, createdAt: "2026-01-01T00:00:01.000Z" });
    await repo.create(second);
    await repo.create(first);

    const items = await tasksOfAgent(owner.issuer, owner.id);
    expect(items.map((i) => i.taskId)).toEqual([first.taskId, second.taskId]);
  });

  it("refuses a second task with the same id and leaves the first untouched", async () => {
    const task = makeTask();
    await repo.create(task);

    const clash = { ...task, template: "other" };
    await expect(repo.create(clash)).rejects.toBeInstanceOf(InternalError);
    await expect(repo.get(task.taskId)).resolves.toEqual(task);
  });

  it("reports DynamoDB failures as upstream_unavailable without echoing request data", async () => {
    const broken = new DynamoTaskRepository({ client: table.doc, tableName: "jitv-no-such-table" });
    const task = makeTask();

    const create = broken.create(task);
    await expect(create).rejects.toBeInstanceOf(UpstreamUnavailableError);
    await expect(create).rejects.toMatchObject({ code: "upstream_unavailable", status: 503 });
    await expect(create).rejects.toSatisfy((e: Error) => !e.message.includes(task.taskId));
    await expect(broken.get(task.taskId)).rejects.toBeInstanceOf(UpstreamUnavailableError);
  });
});

describe("DynamoTaskRepository idempotency", () => {
  it("20 concurrent creates with one Idempotency-Key yield exactly one task", async () => {
    const owner = agent();
    const tasks = Array.from({ length: 20 }, () => makeTask({ agent: owner, idempotencyKey: "same-key" }));

    const results = await Promise.all(tasks.map((t) => repo.create(t)));

    const created = results.filter((r) => r.created);
    expect(created).toHaveLength(1);
    const winner = created[0]?.task.taskId;
    expect(results.map((r) => r.task.taskId)).toEqual(Array(20).fill(winner));
    const items = await tasksOfAgent(owner.issuer, owner.id);
    expect(items.map((i) => i.taskId)).toEqual([winner]);
    // The losers wrote nothing at all: no orphan lease would later "revoke" a task that never existed.
    const leases = await Promise.all(tasks.map((t) => rawItem(leaseKey(t.taskId))));
    expect(leases.filter(Boolean)).toHaveLength(1);
  });

  it("returns the existing task, unchanged, for a repeated key within its life", async () => {
    const owner = agent();
    const first = makeTask({ agent: owner, idempotencyKey: "k" });
    await repo.create(first);
    await repo.recordIssue(first.taskId, new Date(Date.now() + 900_000).toISOString());

    const again = await repo.create(makeTask({ agent: owner, idempotencyKey: "k", template: "other" }));

    expect(again.created).toBe(false);
    expect(again.task).toEqual(await repo.get(first.taskId));
    expect(again.task.template).toBe("reports-read");
  });

  it("an expired idempotency record no longer blocks, even before TTL deletes it", async () => {
    let now = new Date();
    const clocked = new DynamoTaskRepository({
      client: table.doc,
      tableName: table.tableName,
      now: () => now,
    });
    const owner = agent();
    const first = makeTask({
      agent: owner,
      idempotencyKey: "k",
      expiresAt: new Date(Date.now() + 900_000).toISOString(),
    });
    await clocked.create(first);

    // ttlEpoch rounds the deadline up and the check rounds now down: step safely past both.
    now = new Date(Date.now() + 902_000);
    const second = makeTask({ agent: owner, idempotencyKey: "k" });
    const result = await clocked.create(second);

    expect(result).toEqual({ created: true, task: second });
    expect(await rawItem(idempotencyKey(owner.issuer, owner.id, "k"))).toMatchObject({
      taskId: second.taskId,
    });
  });

  it("gives different agents (or the same id at another issuer) different tasks for the same key", async () => {
    const a = agent();
    const b = agent();
    const aElsewhere = { issuer: "https://other-issuer.example", id: a.id };

    const results = await Promise.all(
      [a, b, aElsewhere].map((owner) => repo.create(makeTask({ agent: owner, idempotencyKey: "shared" }))),
    );

    expect(results.map((r) => r.created)).toEqual([true, true, true]);
    expect(new Set(results.map((r) => r.task.taskId)).size).toBe(3);
  });

  it("a '#' in an agent id or key cannot forge another agent's idempotency record", async () => {
    const base = agent().id;
    const left = makeTask({
      agent: { issuer: "https://issuer.example", id: `${base}#x` },
      idempotencyKey: "y",
    });
    const right = makeTask({ agent: { issuer: "https://issuer.example", id: base }, idempotencyKey: "x#y" });

    const results = [await repo.create(left), await repo.create(right)];

    expect(results.map((r) => r.created)).toEqual([true, true]);
  });

  it("throws internal when the idempotency record points at a task that does not exist", async () => {
    const owner = agent();
    const ghost = makeTask({ agent: owner, idempotencyKey: "ghost" });
    await table.doc.send(
      new PutCommand({
        TableName: table.tableName,
        Item: idempotencyItem({ ...ghost, idempotencyKey: "ghost" }),
      }),
    );

    await expect(repo.create(makeTask({ agent: owner, idempotencyKey: "ghost" }))).rejects.toBeInstanceOf(
      InternalError,
    );
  });
});

describe("DynamoTaskRepository transaction conflicts", () => {
  /** A document client whose first `failures` TransactWriteItems calls are cancelled as conflicting. */
  function conflictingClient(failures: number) {
    const client = new DynamoDBClient(localClientConfig());
    let remaining = failures;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === "TransactWriteItemsCommand" && remaining > 0) {
          remaining--;
          throw new TransactionCanceledException({
            message: "Transaction cancelled",
            $metadata: {},
            CancellationReasons: [{ Code: "None" }, { Code: "None" }, { Code: "TransactionConflict" }],
          });
        }
        return next(args);
      },
      { step: "initialize", name: "injectTransactionConflict" },
    );
    return { doc: DynamoDBDocumentClient.from(client), attempts: () => failures - remaining };
  }

  it("retries a create cancelled by a transaction conflict", async () => {
    const { doc, attempts } = conflictingClient(3);
    const flaky = new DynamoTaskRepository({ client: doc, tableName: table.tableName });
    const task = makeTask({ idempotencyKey: "retry", agent: agent() });

    await expect(flaky.create(task)).resolves.toEqual({ created: true, task });
    expect(attempts()).toBe(3);
    await expect(repo.get(task.taskId)).resolves.toEqual(task);
  });

  it("gives up with upstream_unavailable when conflicts persist", async () => {
    const { doc } = conflictingClient(100);
    const flaky = new DynamoTaskRepository({
      client: doc,
      tableName: table.tableName,
      maxConflictRetries: 2,
    });
    const task = makeTask({ idempotencyKey: "busy", agent: agent() });

    await expect(flaky.create(task)).rejects.toBeInstanceOf(UpstreamUnavailableError);
    await expect(repo.get(task.taskId)).resolves.toBeUndefined();
  });
});

describe("DynamoTaskRepository markFailed", () => {
  it("fails an active task with a reason", async () => {
    const task = makeTask();
    await repo.create(task);

    await repo.markFailed(task.taskId, "could not start the lifecycle");

    await expect(repo.get(task.taskId)).resolves.toEqual({
      ...task,
      status: "failed",
      reason: "could not start the lifecycle",
    });
  });

  it("fails a pending_approval task", async () => {
    const task = makeTask({ status: "pending_approval" });
    await repo.create(task);

    await repo.markFailed(task.taskId, "approval workflow unavailable");

    await expect(repo.get(task.taskId)).resolves.toMatchObject({ status: "failed" });
  });

  it("refuses a task in another state with conflict, leaving it unchanged", async () => {
    const task = makeTask({ status: "completed" });
    await repo.create(task);

    await expect(repo.markFailed(task.taskId, "late")).rejects.toBeInstanceOf(ConflictError);
    await expect(repo.get(task.taskId)).resolves.toEqual(task);
  });

  it("reports an unknown task as not_found and does not create it", async () => {
    await expect(repo.markFailed("tsk_missing", "x")).rejects.toBeInstanceOf(NotFoundError);
    expect(await rawItem(taskKey("tsk_missing"))).toBeUndefined();
  });
});

describe("DynamoTaskRepository recordIssue", () => {
  it("counts issues and never lowers lastCredentialExpiry", async () => {
    const task = makeTask();
    await repo.create(task);

    await repo.recordIssue(task.taskId, "2030-01-01T01:00:00.000Z");
    await repo.recordIssue(task.taskId, "2030-01-01T00:30:00.000Z");

    await expect(repo.get(task.taskId)).resolves.toMatchObject({
      issuedCount: 2,
      lastCredentialExpiry: "2030-01-01T01:00:00.000Z",
    });

    await repo.recordIssue(task.taskId, "2030-01-01T02:00:00Z");
    await expect(repo.get(task.taskId)).resolves.toMatchObject({
      issuedCount: 3,
      lastCredentialExpiry: "2030-01-01T02:00:00.000Z",
    });
  });

  it("compares times, not strings: 00:00:00.500Z is later than 00:00:00Z", async () => {
    const task = makeTask();
    await repo.create(task);

    await repo.recordIssue(task.taskId, "2030-01-01T00:00:00Z");
    await repo.recordIssue(task.taskId, "2030-01-01T00:00:00.500Z");

    await expect(repo.get(task.taskId)).resolves.toMatchObject({
      lastCredentialExpiry: "2030-01-01T00:00:00.500Z",
    });
  });

  it("keeps the maximum under concurrent issues", async () => {
    const task = makeTask();
    await repo.create(task);
    const expiries = Array.from({ length: 10 }, (_, i) =>
      new Date(Date.UTC(2030, 0, 1, 0, (i * 7) % 10)).toISOString(),
    );

    await Promise.all(expiries.map((e) => repo.recordIssue(task.taskId, e)));

    await expect(repo.get(task.taskId)).resolves.toMatchObject({
      issuedCount: 10,
      lastCredentialExpiry: "2030-01-01T00:09:00.000Z",
    });
  });

  it("reports an unknown task as not_found and does not create it", async () => {
    await expect(repo.recordIssue("tsk_nowhere", "2030-01-01T00:00:00Z")).rejects.toBeInstanceOf(
      NotFoundError,
    );
    expect(await rawItem(taskKey("tsk_nowhere"))).toBeUndefined();
  });
});
