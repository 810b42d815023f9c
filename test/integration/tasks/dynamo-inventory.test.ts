import { randomUUID } from "node:crypto";
import { beforeEach, describe, expect, it } from "vitest";
import { InvalidRequestError } from "../../../lib/domain/errors.js";
import type { AgentRef, Task } from "../../../lib/domain/task.js";
import { DynamoInventory } from "../../../lib/tasks/dynamo-inventory.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import type { ListTasksInput } from "../../../lib/tasks/inventory.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { makeTask } from "./fixtures.js";

const NOW = Date.parse("2026-03-02T10:00:00.000Z");

let table: TestTable;
let repo: DynamoTaskRepository;
let inventory: DynamoInventory;

// A table per test: listing by status sees every task of the table.
beforeEach(async () => {
  table = await createTestTable();
  repo = new DynamoTaskRepository({ client: table.doc, tableName: table.tableName });
  inventory = new DynamoInventory({
    client: table.doc,
    tableName: table.tableName,
    now: () => new Date(NOW),
  });
});

function newAgent(): AgentRef {
  return { issuer: "https://issuer.example", id: `agent-${randomUUID()}` };
}

/** A task created `minutesAgo` before NOW, living an hour unless told otherwise. */
function taskAt(minutesAgo: number, overrides: Partial<Task> = {}): Task {
  const createdAt = NOW - minutesAgo * 60_000;
  return makeTask({
    createdAt: new Date(createdAt).toISOString(),
    expiresAt: new Date(createdAt + 3_600_000).toISOString(),
    ...overrides,
  });
}

async function createAll(...tasks: Task[]): Promise<Task[]> {
  for (const task of tasks) await repo.create(task);
  return tasks;
}

/** Every page of a listing, following nextToken. */
async function allPages(input: ListTasksInput): Promise<string[][]> {
  const pages: string[][] = [];
  let nextToken: string | undefined;
  do {
    const page = await inventory.listTasks({ ...input, ...(nextToken ? { nextToken } : {}) });
    pages.push(page.tasks.map((t) => t.taskId));
    nextToken = page.nextToken;
  } while (nextToken && pages.length < 20);
  return pages;
}

describe("DynamoInventory.listTasks", () => {
  it("lists active tasks newest first, in pages of limit, without key attributes", async () => {
    const [t1, t2, t3, t4, t5] = await createAll(taskAt(5), taskAt(4), taskAt(3), taskAt(2), taskAt(1));

    const first = await inventory.listTasks({ limit: 2 });
    expect(first.tasks).toEqual([t5, t4]);
    expect(first.nextToken).toMatch(/^[A-Za-z0-9_-]+$/);

    const pages = await allPages({ limit: 2 });
    expect(pages).toEqual([[t5?.taskId, t4?.taskId], [t3?.taskId, t2?.taskId], [t1?.taskId]]);
  });

  it("lists another status when asked, and follows transitions", async () => {
    const [a, b, c] = await createAll(taskAt(3), taskAt(2), taskAt(1));
    await repo.transition(String(a?.taskId), ["active"], "completed");
    await repo.transition(String(c?.taskId), ["active"], "revoked", "leaked");

    expect(await allPages({ status: "completed" })).toEqual([[a?.taskId]]);
    expect(await allPages({ status: "revoked" })).toEqual([[c?.taskId]]);
    expect(await allPages({})).toEqual([[b?.taskId]]);
    expect((await inventory.listTasks({ status: "revoked" })).tasks[0]).toMatchObject({
      status: "revoked",
      reason: "leaked",
    });
  });

  it("hides active tasks whose deadline has passed, whatever the record says", async () => {
    const [live] = await createAll(
      taskAt(10),
      taskAt(120), // expired an hour ago; the record still says active
      taskAt(61, { status: "pending_approval" }),
    );

    expect(await allPages({})).toEqual([[live?.taskId]]);
    expect(await allPages({ status: "pending_approval" })).toEqual([[]]);
  });

  it("filters by agent (with status) and by template, paging through what the filters keep", async () => {
    const alice = newAgent();
    const bob = newAgent();
    const tasks = await createAll(
      taskAt(7, { agent: alice, template: "reports-read" }),
      taskAt(6, { agent: bob, template: "reports-read" }),
      taskAt(5, { agent: alice, template: "db-admin" }),
      taskAt(4, { agent: alice, template: "reports-read" }),
      taskAt(3, { agent: bob, template: "db-admin" }),
      taskAt(2, { agent: alice, template: "reports-read" }),
      taskAt(1, { agent: alice, template: "reports-read", expiresAt: new Date(NOW - 1).toISOString() }),
    );
    const id = (i: number) => tasks[i]?.taskId;
    await repo.transition(String(id(3)), ["active"], "completed");

    expect(await allPages({ agent: alice, limit: 2 })).toEqual([[id(5), id(2)], [id(0)]]);
    expect(await allPages({ agent: alice, template: "reports-read", limit: 2 })).toEqual([[id(5), id(0)]]);
    expect(await allPages({ agent: alice, status: "completed" })).toEqual([[id(3)]]);
    expect(await allPages({ template: "db-admin", limit: 2 })).toEqual([[id(4), id(2)]]);
    expect(await allPages({ template: "reports-read", limit: 1 })).toEqual([[id(5)], [id(1)], [id(0)]]);
    expect(await allPages({ agent: newAgent() })).toEqual([[]]);
  });

  it("bounds the reading a sparse filter causes per page, and still reaches every match", async () => {
    const others = Array.from({ length: 30 }, (_, i) => taskAt(i + 2, { template: "other" }));
    const [rare] = await createAll(taskAt(50, { template: "rare" }), ...others);

    const pages = await allPages({ template: "rare", limit: 1 });

    // Some pages come back empty with a nextToken: each reads at most 10 × 2 items.
    expect(pages.length).toBeGreaterThan(1);
    expect(pages[0]).toEqual([]);
    expect(pages.flat()).toEqual([rare?.taskId]);
  });

  it("refuses a tampered, foreign or malformed nextToken with invalid_request", async () => {
    const agent = newAgent();
    await createAll(taskAt(3, { agent }), taskAt(2, { agent }), taskAt(1, { agent }));
    const byStatus = await inventory.listTasks({ limit: 1 });
    const byAgent = await inventory.listTasks({ agent, limit: 1 });
    const key = JSON.parse(Buffer.from(String(byStatus.nextToken), "base64url").toString("utf8"));
    const forge = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

    const bad = [
      "not a token!",
      forge({ ...key, gsi2pk: "STATUS#completed" }), // another partition
      forge({ ...key, pk: "TEMPLATE#x" }), // not a task key
      forge({ ...key, extra: "x" }),
      forge({ pk: key.pk, sk: key.sk }),
      forge([1, 2]),
      Buffer.from("{not json").toString("base64url"),
      String(byAgent.nextToken), // a token of the agent query
    ];
    for (const nextToken of bad) {
      await expect(inventory.listTasks({ limit: 1, nextToken })).rejects.toThrow(InvalidRequestError);
    }
    await expect(inventory.listTasks({ limit: 1, nextToken: byStatus.nextToken })).resolves.toMatchObject({
      tasks: [expect.any(Object)],
    });
    await expect(
      inventory.listTasks({ agent, limit: 1, nextToken: String(byStatus.nextToken) }),
    ).rejects.toMatchObject({ code: "invalid_request", message: "nextToken is invalid" });
  });

  it("refuses a limit outside 1..100", async () => {
    for (const limit of [0, 101, 1.5]) {
      await expect(inventory.listTasks({ limit })).rejects.toThrow(InvalidRequestError);
    }
  });
});

describe("DynamoInventory agent registry", () => {
  it("records first and last seen, total tasks, and counts active unexpired tasks", async () => {
    const agent = newAgent();
    const seen = { ...agent, zone: "customer" as const };
    const [, done] = await createAll(
      taskAt(10, { agent }),
      taskAt(9, { agent }),
      taskAt(120, { agent }), // expired, still active on record
      taskAt(8, { agent }),
    );
    await repo.transition(String(done?.taskId), ["active"], "completed");
    await inventory.recordAgentSeen(seen, new Date("2026-03-01T08:00:00.000Z"));
    await inventory.recordAgentSeen(seen, new Date("2026-03-02T09:00:00.000Z"));
    await inventory.recordAgentSeen(seen, new Date("2026-03-02T09:30:00.000Z"));
    await inventory.recordAgentSeen(seen, new Date("2026-03-02T09:45:00.000Z"), { countTask: false });

    expect(await inventory.listAgents()).toEqual({
      agents: [
        {
          issuer: agent.issuer,
          id: agent.id,
          zone: "customer",
          firstSeen: "2026-03-01T08:00:00.000Z",
          lastSeen: "2026-03-02T09:45:00.000Z",
          activeTasks: 2,
          totalTasks: 3,
        },
      ],
    });
  });

  it("lists every agent in pages, and refuses a tampered nextToken", async () => {
    const ids = ["a", "b", "c"].map((p) => `${p}-${randomUUID()}`);
    for (const id of ids) {
      await inventory.recordAgentSeen(
        { issuer: "https://issuer.example", id, zone: "workforce" },
        new Date(NOW),
      );
    }
    // The same id under another issuer is another agent.
    await inventory.recordAgentSeen(
      { issuer: "https://other.example", id: String(ids[0]), zone: "customer" },
      new Date(NOW),
    );

    const first = await inventory.listAgents({ limit: 2 });
    const second = await inventory.listAgents({ limit: 2, nextToken: String(first.nextToken) });

    expect(first.agents.map((a) => a.id)).toEqual([ids[0], ids[1]]);
    expect(second.agents.map((a) => [a.issuer, a.id])).toEqual([
      ["https://issuer.example", ids[2]],
      ["https://other.example", ids[0]],
    ]);
    expect(second.nextToken).toBeUndefined();
    expect(second.agents[1]).toMatchObject({ zone: "customer", activeTasks: 0, totalTasks: 1 });
    await createAll(taskAt(1), taskAt(2));
    const tasksToken = (await inventory.listTasks({ limit: 1 })).nextToken;
    await expect(inventory.listAgents({ nextToken: String(tasksToken) })).rejects.toThrow(
      InvalidRequestError,
    );
    await expect(inventory.listAgents({ nextToken: "e30" })).rejects.toThrow(InvalidRequestError);
  });
});
