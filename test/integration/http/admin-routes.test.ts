import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { InvalidTokenError } from "../../../lib/domain/errors.js";
import type { VerifiedIdentity } from "../../../lib/domain/identity.js";
import type { Task } from "../../../lib/domain/task.js";
import { adminRoutes } from "../../../lib/http/admin-routes.js";
import type { RouteEntry } from "../../../lib/http/api.js";
import type { HttpResponse } from "../../../lib/http/types.js";
import { DynamoInventory } from "../../../lib/tasks/dynamo-inventory.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { makeTask } from "../tasks/fixtures.js";

const NOW = Date.parse("2026-03-02T10:00:00.000Z");

function identity(id: string, kind: VerifiedIdentity["kind"], groups: string[] = []): VerifiedIdentity {
  return {
    profile: kind === "user" ? "idp" : "ci",
    issuer: kind === "user" ? "https://idp.example" : "https://issuer.example",
    kind,
    zone: "workforce",
    subject: id,
    id,
    groups,
    expiresAt: NOW / 1000 + 600,
    claims: { sub: id, groups },
  };
}

/** Bearer tokens the fake authenticator knows. */
const IDENTITIES: Record<string, VerifiedIdentity> = {
  "admin-token": identity("root", "user", ["jitv-admins"]),
  "user-token": identity("bob", "user", ["engineers"]),
  "agent-token": identity("agent-a", "agent"),
};

let table: TestTable;
let repo: DynamoTaskRepository;
let routes: RouteEntry[];
const agent = { issuer: "https://issuer.example", id: `agent-${randomUUID()}` };
let tasks: Task[];

beforeAll(async () => {
  table = await createTestTable();
  repo = new DynamoTaskRepository({ client: table.doc, tableName: table.tableName });
  const inventory = new DynamoInventory({
    client: table.doc,
    tableName: table.tableName,
    now: () => new Date(NOW),
  });
  routes = adminRoutes({
    authenticate: async (token) => {
      const found = IDENTITIES[token];
      if (!found) throw new InvalidTokenError("token verification failed");
      return found;
    },
    isAdmin: (who) => who.groups.includes("jitv-admins"),
    scope: async () => ({}),
    inventory,
    now: () => new Date(NOW),
  });
  tasks = [1, 2, 3].map((minutesAgo) =>
    makeTask({
      agent,
      template: minutesAgo === 2 ? "db-admin" : "reports-read",
      createdAt: new Date(NOW - minutesAgo * 60_000).toISOString(),
      expiresAt: new Date(NOW + 600_000).toISOString(),
      onBehalfOf: { issuer: "https://idp.example", user: "alice", tenant: "acme" },
      purpose: "quarterly report",
    }),
  );
  for (const task of tasks) await repo.create(task);
  await inventory.recordAgentSeen({ ...agent, zone: "workforce" }, new Date(NOW - 60_000));
});

/** Calls the route that matches, as `createApi` would. */
async function get(
  path: string,
  query: Record<string, string> = {},
  token: string | null = "admin-token",
): Promise<HttpResponse & { json: Record<string, unknown> }> {
  const entry = routes.find((r) => r.method === "GET" && r.pattern.test(path));
  if (!entry) throw new Error(`no route for ${path}`);
  const match = entry.pattern.exec(path) ?? [];
  const response = await entry.handle(
    {
      method: "GET",
      path,
      headers: token === null ? {} : { authorization: `Bearer ${token}` },
      query,
      body: undefined,
      requestId: "req-1",
    },
    match.slice(1),
  );
  return { ...response, json: JSON.parse(response.body) };
}

describe("GET /v1/tasks", () => {
  it("gives an admin the active tasks as the task view, newest first, in pages", async () => {
    const first = await get("/v1/tasks", { limit: "2" });

    expect(first.status).toBe(200);
    expect(first.headers).toMatchObject({ "content-type": "application/json", "x-request-id": "req-1" });
    expect(first.json.tasks).toEqual([
      {
        taskId: tasks[0]?.taskId,
        status: "active",
        template: "reports-read",
        agent,
        onBehalfOf: { user: "alice", tenant: "acme" },
        purpose: "quarterly report",
        createdAt: tasks[0]?.createdAt,
        expiresAt: tasks[0]?.expiresAt,
      },
      expect.objectContaining({ taskId: tasks[1]?.taskId }),
    ]);
    expect(first.body).not.toContain("sessionPolicy");
    expect(first.body).not.toContain("gsi");

    const second = await get("/v1/tasks", { limit: "2", nextToken: String(first.json.nextToken) });
    expect((second.json.tasks as Task[]).map((t) => t.taskId)).toEqual([tasks[2]?.taskId]);
    expect(second.json).not.toHaveProperty("nextToken");
  });

  it("filters by agent (with its issuer), template and status", async () => {
    const byAgent = await get("/v1/tasks", { agent: agent.id, issuer: agent.issuer, template: "db-admin" });
    expect((byAgent.json.tasks as Task[]).map((t) => t.taskId)).toEqual([tasks[1]?.taskId]);

    const completed = await get("/v1/tasks", { status: "completed" });
    expect(completed.json).toEqual({ tasks: [] });
  });

  it("refuses a bad query with 400 invalid_request", async () => {
    const bad: Record<string, string>[] = [
      { agent: agent.id },
      { issuer: agent.issuer },
      { status: "running" },
      { limit: "0" },
      { limit: "101" },
      { limit: "ten" },
      { limit: "1e1" },
      { template: "x".repeat(65) },
      { nextToken: "Zm9v" },
      { owner: "someone" },
    ];
    for (const query of bad) {
      await expect(get("/v1/tasks", query), JSON.stringify(query)).rejects.toMatchObject({
        code: "invalid_request",
        status: 400,
      });
    }
  });

  it("answers 403 forbidden to users and agents who are not admins, and 401 without a valid token", async () => {
    for (const token of ["user-token", "agent-token"]) {
      await expect(get("/v1/tasks", {}, token)).rejects.toMatchObject({ code: "forbidden", status: 403 });
      // The query is not even looked at.
      await expect(get("/v1/tasks", { status: "bogus" }, token)).rejects.toMatchObject({ code: "forbidden" });
    }
    await expect(get("/v1/tasks", {}, null)).rejects.toMatchObject({ code: "invalid_token" });
    await expect(get("/v1/tasks", {}, "forged")).rejects.toMatchObject({ code: "invalid_token" });
  });
});

describe("GET /v1/agents", () => {
  it("lists the agents seen with their counts for an admin", async () => {
    const response = await get("/v1/agents");

    expect(response.status).toBe(200);
    expect(response.json).toEqual({
      agents: [
        {
          issuer: agent.issuer,
          id: agent.id,
          zone: "workforce",
          firstSeen: new Date(NOW - 60_000).toISOString(),
          lastSeen: new Date(NOW - 60_000).toISOString(),
          activeTasks: 3,
          totalTasks: 1,
        },
      ],
    });
  });

  it("pages, refuses bad queries, and is for admins only", async () => {
    await expect(get("/v1/agents", { limit: "1" })).resolves.toMatchObject({
      json: { agents: [expect.objectContaining({ id: agent.id })] },
    });
    await expect(get("/v1/agents", { status: "active" })).rejects.toMatchObject({ code: "invalid_request" });
    await expect(get("/v1/agents", { nextToken: "%%%" })).rejects.toMatchObject({ code: "invalid_request" });
    await expect(get("/v1/agents", {}, "user-token")).rejects.toMatchObject({ code: "forbidden" });
  });

  it("does not shadow GET /v1/tasks/{taskId}", () => {
    expect(routes.some((r) => r.pattern.test("/v1/tasks/tsk_1"))).toBe(false);
  });
});
