import { randomUUID } from "node:crypto";
import { Logger } from "@aws-lambda-powertools/logger";
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import type { JWTPayload } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MemoryAuditLog } from "../../../lib/audit/logger-audit-log.js";
import { SandboxBroker } from "../../../lib/credentials/sandbox-broker.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { type ApiCore, composeApi } from "../../../lib/http/compose-api.js";
import type { HttpResponse } from "../../../lib/http/types.js";
import { parseIssuerConfig } from "../../../lib/identity/issuers.js";
import { idempotencyKey, taskKey } from "../../../lib/store/table.js";
import { DynamoTemplateStore } from "../../../lib/tasks/dynamo-template-store.js";
import { apiClient, type Json } from "../../support/api-client.js";
import { createTestTable } from "../../support/dynamodb.js";
import { startTestIssuer, type TestIssuer } from "../../support/test-issuer.js";

// Trust boundaries of delegation and tenancy (CONTRACT.md sections 2 and 3), tried as an attacker
// would: through the HTTP API, on DynamoDB Local, with real tokens from real JWKS servers.

let agents: TestIssuer;
let bots: TestIssuer;
let users: TestIssuer;
let partner: TestIssuer;
let staff: TestIssuer;
let core: ApiCore;
let table: Awaited<ReturnType<typeof createTestTable>>;
let audit: MemoryAuditLog;
let offsetMs = 0;
const broker = new SandboxBroker();
const DELEGATION_AUDIENCE = "jitv-delegation";

const now = () => Date.now() + offsetMs;

beforeAll(async () => {
  [agents, bots, users, partner, staff, table] = await Promise.all([
    startTestIssuer({ alg: "ES256" }),
    startTestIssuer({ alg: "ES256" }),
    startTestIssuer({ alg: "ES256" }),
    startTestIssuer({ alg: "ES256" }),
    startTestIssuer({ alg: "ES256" }),
    createTestTable(),
  ]);
  const customerUser = {
    kind: "user",
    zone: "customer",
    claims: { tenant: "tenant", groups: "groups" },
  } as const;
  const issuers = parseIssuerConfig({
    issuers: [
      agents.profile({ name: "agents" }),
      bots.profile({ name: "bots", zone: "customer" }),
      users.profile({
        name: "users",
        ...customerUser,
        tenants: ["acme", "globex"],
        delegation: { audience: DELEGATION_AUDIENCE },
      }),
      partner.profile({ name: "partner", ...customerUser, tenants: ["initech"] }),
      staff.profile({ name: "staff", kind: "user", claims: { groups: "groups" } }),
    ],
    admins: [staff, users].map((i) => ({ issuer: i.issuer, claim: "groups", values: ["jitv-admins"] })),
    approvers: [staff, users].map((i) => ({ issuer: i.issuer, claim: "groups", values: ["jitv-approvers"] })),
  });
  audit = new MemoryAuditLog();
  core = composeApi({
    doc: table.doc,
    tableName: table.tableName,
    issuers,
    broker,
    lifecycle: { start: async () => undefined },
    tokens: { sendSuccess: async () => undefined },
    logger: new Logger({ serviceName: "jitv-test", logLevel: "CRITICAL" }),
    audit,
    // Small buckets, so the refresh rate shows within a test.
    vendRate: { capacity: 60, refillPerSecond: 0.001 },
    targetAccounts: ["123456789012"],
    now: () => new Date(now()),
  });
  const customer = {
    zone: "customer",
    roleArn: "arn:aws:iam::123456789012:role/jitv/tenant-reader",
    sessionPolicy: {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::data/{{tenant}}/*" }],
    },
    agents: [{ issuer: bots.issuer, subjects: ["support-bot", "support-bot-2"] }],
  };
  await core.templates.put(parseTemplate({ ...customer, name: "tenant-read" }));
  await core.templates.put(
    parseTemplate({
      ...customer,
      name: "tenant-prefixed",
      sessionPolicy: {
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Action: "s3:GetObject",
            Resource: "arn:aws:s3:::data/{{tenant}}/{{params.prefix}}/*",
          },
        ],
      },
      parameters: { prefix: { pattern: "^[a-z0-9-]{1,32}$" } },
    }),
  );
  await core.templates.put(
    parseTemplate({ ...customer, name: "tenant-gated", approval: { required: true, timeoutSeconds: 900 } }),
  );
  await core.templates.put(
    parseTemplate({
      name: "reports-read",
      zone: "workforce",
      roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
      sessionPolicy: {
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::reports/*" }],
      },
      agents: [{ issuer: agents.issuer, subjects: ["agent-a", "team:a", "team/a"] }],
    }),
  );
});

afterAll(async () => {
  await Promise.all([agents, bots, users, partner, staff].map((i) => i?.close()));
});

beforeEach(async () => {
  await storePolicies("");
  audit.events.length = 0;
});

/** Replaces the stored test policy set and lets the authorizer pick it up. */
async function storePolicies(text: string): Promise<void> {
  await core.policies.put("test", text);
  offsetMs += 6000;
}

const client = apiClient(() => core.api);
const call = (
  method: string,
  path: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
  query: Record<string, string> = {},
) => client(method, path, { token, body, headers, query });

/** Signs on the service's clock (tests move it forward). */
const sign = (issuer: TestIssuer, claims: JWTPayload) => {
  const iat = Math.floor(now() / 1000);
  return issuer.sign({ iat, exp: iat + 300, ...claims });
};
const bot = (sub = "support-bot") => sign(bots, { sub });
/** A user's delegation token for one agent (RFC 8693 `act`). */
const delegation = (sub: string, tenant: string, act: Record<string, unknown> = {}) =>
  sign(users, { sub, tenant, act: { sub: "support-bot", iss: bots.issuer, ...act } });
const staffer = (sub: string, groups: string[]) => sign(staff, { sub, groups });
const customerStaff = (sub: string, tenant: string, groups: string[]) => sign(users, { sub, tenant, groups });

async function vendFor(
  user: string,
  tenant: string,
  options: { template?: string; agent?: string; key?: string; parameters?: Record<string, string> } = {},
) {
  const res = await call(
    "POST",
    "/v1/tasks",
    await bot(options.agent),
    {
      template: options.template ?? "tenant-read",
      subjectToken: await delegation(user, tenant, options.agent ? { sub: options.agent } : {}),
      ...(options.parameters ? { parameters: options.parameters } : {}),
    },
    options.key ? { "idempotency-key": options.key } : {},
  );
  return res;
}

async function taskStatus(taskId: string) {
  const out = await table.doc.send(new GetCommand({ TableName: table.tableName, Key: taskKey(taskId) }));
  return out.Item?.status;
}

function expectError(res: HttpResponse & { json: Json }, status: number, code: string) {
  expect(res.status, JSON.stringify(res.json)).toBe(status);
  expect(res.json.error.code).toBe(code);
}

describe("customer-zone admins and approvers act only within their own tenant", () => {
  it("an acme admin cannot read, revoke or approve a globex task: 404, nothing changes", async () => {
    const globex = (await vendFor("bob", "globex")).json.taskId;
    const gated = await vendFor("bob", "globex", { template: "tenant-gated" });
    expect(gated.status).toBe(202);
    const acmeAdmin = await customerStaff("acme-admin", "acme", ["jitv-admins", "jitv-approvers"]);

    expectError(await call("GET", `/v1/tasks/${globex}`, acmeAdmin), 404, "not_found");
    expectError(
      await call("POST", `/v1/tasks/${globex}/revoke`, acmeAdmin, { reason: "x" }),
      404,
      "not_found",
    );
    expectError(await call("POST", `/v1/tasks/${gated.json.taskId}/approve`, acmeAdmin), 404, "not_found");
    expectError(await call("POST", `/v1/tasks/${gated.json.taskId}/deny`, acmeAdmin), 404, "not_found");
    expect(await taskStatus(globex)).toBe("active");
    expect(await taskStatus(gated.json.taskId)).toBe("pending_approval");

    // Its own tenant's tasks it reads, approves and revokes.
    const acme = (await vendFor("alice", "acme")).json.taskId;
    expect((await call("GET", `/v1/tasks/${acme}`, acmeAdmin)).status).toBe(200);
    expect((await call("POST", `/v1/tasks/${acme}/revoke`, acmeAdmin, { reason: "x" })).status).toBe(200);
    const acmeGated = (await vendFor("alice", "acme", { template: "tenant-gated" })).json.taskId;
    expect((await call("POST", `/v1/tasks/${acmeGated}/approve`, acmeAdmin)).json.status).toBe("active");
  });

  it("a customer-zone admin never reaches a workforce task, nor one without its tenant claim", async () => {
    const workforce = await call("POST", "/v1/tasks", await sign(agents, { sub: "agent-a" }), {
      template: "reports-read",
    });
    expect(workforce.status).toBe(201);
    const acmeAdmin = await customerStaff("acme-admin", "acme", ["jitv-admins"]);
    expectError(await call("GET", `/v1/tasks/${workforce.json.taskId}`, acmeAdmin), 404, "not_found");
    expectError(
      await call("POST", `/v1/tasks/${workforce.json.taskId}/revoke`, acmeAdmin, { reason: "x" }),
      404,
      "not_found",
    );
    const acme = (await vendFor("alice", "acme")).json.taskId;
    const noTenant = await sign(users, { sub: "ghost", groups: ["jitv-admins"] });
    // The users profile lists its tenants, so a token naming none is refused outright.
    expectError(await call("GET", `/v1/tasks/${acme}`, noTenant), 403, "forbidden");
    expectError(await call("GET", "/v1/tasks", noTenant), 403, "forbidden");
  });

  it("lists only the admin's tenant, and no nextToken points into another tenant", async () => {
    const mine = new Set<string>();
    for (let i = 0; i < 3; i++) {
      mine.add((await vendFor("alice", "acme")).json.taskId);
      await vendFor("bob", "globex");
    }
    const acmeAdmin = await customerStaff("acme-admin", "acme", ["jitv-admins"]);
    const seen: string[] = [];
    let nextToken: string | undefined;
    let pages = 0;
    do {
      const res = await call(
        "GET",
        "/v1/tasks",
        acmeAdmin,
        undefined,
        {},
        {
          limit: "1",
          ...(nextToken ? { nextToken } : {}),
        },
      );
      expect(res.status).toBe(200);
      for (const task of res.json.tasks) {
        expect(task.onBehalfOf.tenant).toBe("acme");
        seen.push(task.taskId);
      }
      nextToken = res.json.nextToken;
      if (nextToken) {
        const key = JSON.parse(Buffer.from(nextToken, "base64url").toString("utf8"));
        // Every key a page resumes from belongs to the acme partition.
        expect(key.gsi3pk).toBe("TENANT#acme");
      }
    } while (nextToken && ++pages < 50);
    for (const id of mine) expect(seen).toContain(id);

    // A globex partition key forged into a token is refused, not followed.
    const forged = Buffer.from(
      JSON.stringify({ pk: "TASK#x", sk: "TASK", gsi3pk: "TENANT#globex", gsi3sk: "2026" }),
    ).toString("base64url");
    expectError(
      await call("GET", "/v1/tasks", acmeAdmin, undefined, {}, { nextToken: forged }),
      400,
      "invalid_request",
    );

    // The agent registry counts only acme's tasks for an acme admin.
    const agentsRes = await call("GET", "/v1/agents", acmeAdmin);
    expect(agentsRes.status).toBe(200);
    const supportBot = agentsRes.json.agents.find((a: Json) => a.id === "support-bot");
    const acmeActive = (await call("GET", "/v1/tasks", acmeAdmin, undefined, {}, { limit: "100" })).json.tasks
      .length;
    expect(supportBot.activeTasks).toBe(acmeActive);
  });

  it("workforce admins see and revoke every zone; a workforce approver cannot approve a customer task", async () => {
    const globex = (await vendFor("bob", "globex")).json.taskId;
    const admin = await staffer("root", ["jitv-admins"]);
    const list = await call("GET", "/v1/tasks", admin, undefined, {}, { limit: "100" });
    expect(list.json.tasks.map((t: Json) => t.taskId)).toContain(globex);
    const agentIds = (await call("GET", "/v1/agents", admin)).json.agents.map((a: Json) => a.id);
    expect(agentIds).toContain("support-bot");
    expect((await call("GET", `/v1/tasks/${globex}`, admin)).status).toBe(200);

    const gated = (await vendFor("bob", "globex", { template: "tenant-gated" })).json.taskId;
    expectError(
      await call("POST", `/v1/tasks/${gated}/approve`, await staffer("pat", ["jitv-approvers"])),
      404,
      "not_found",
    );
    // An admin of every zone is told it may not approve there, rather than that the task is unknown.
    expectError(
      await call(
        "POST",
        `/v1/tasks/${gated}/approve`,
        await staffer("root", ["jitv-admins", "jitv-approvers"]),
      ),
      403,
      "forbidden",
    );
    expect((await call("POST", `/v1/tasks/${globex}/revoke`, admin, { reason: "incident" })).status).toBe(
      200,
    );
    expect(await taskStatus(globex)).toBe("revoked");
  });

  it("a stored permit cannot widen the tenant boundary: the baseline forbid still decides", async () => {
    await storePolicies(`@id("permit-all") permit (principal, action, resource);`);
    const globex = (await vendFor("bob", "globex")).json.taskId;
    const acmeAdmin = await customerStaff("acme-admin", "acme", ["jitv-admins"]);
    expectError(await call("GET", `/v1/tasks/${globex}`, acmeAdmin), 404, "not_found");
    const listed = (await call("GET", "/v1/tasks", acmeAdmin, undefined, {}, { limit: "100" })).json.tasks;
    expect(listed.every((t: Json) => t.onBehalfOf.tenant === "acme")).toBe(true);
  });
});

describe("delegation tokens are bound to the agent, single-use, and never bearer tokens", () => {
  it("refuses a subject token without act (401), and one naming another agent or issuer (403)", async () => {
    const plain = await sign(users, { sub: "alice", tenant: "acme" });
    expectError(
      await call("POST", "/v1/tasks", await bot(), { template: "tenant-read", subjectToken: plain }),
      401,
      "invalid_token",
    );
    for (const act of [{ sub: "support-bot-2" }, { iss: agents.issuer }]) {
      const other = await delegation("alice", "acme", act);
      expectError(
        await call("POST", "/v1/tasks", await bot(), { template: "tenant-read", subjectToken: other }),
        403,
        "forbidden",
      );
    }
    // The other listed agent cannot use a token made for support-bot.
    expectError(
      await call("POST", "/v1/tasks", await bot("support-bot-2"), {
        template: "tenant-read",
        subjectToken: await delegation("alice", "acme"),
      }),
      403,
      "forbidden",
    );
  });

  it("accepts the profile's delegation audience without act", async () => {
    const subjectToken = await sign(users, { sub: "alice", tenant: "acme", aud: DELEGATION_AUDIENCE });
    const res = await call("POST", "/v1/tasks", await bot(), { template: "tenant-read", subjectToken });
    expect(res.status).toBe(201);
    expect(res.json.onBehalfOf).toEqual({ user: "alice", tenant: "acme" });
  });

  it("a subject token vends once: the second vend is 401 and creates nothing", async () => {
    const subjectToken = await delegation("alice", "acme");
    expect(
      (await call("POST", "/v1/tasks", await bot(), { template: "tenant-read", subjectToken })).status,
    ).toBe(201);
    const before = audit.events.filter((e) => e.event === "vend.allowed").length;
    const again = await call("POST", "/v1/tasks", await bot(), { template: "tenant-read", subjectToken });
    expectError(again, 401, "invalid_token");
    expect(audit.events.filter((e) => e.event === "vend.allowed").length).toBe(before);
    expect(audit.events.at(-1)).toMatchObject({ event: "vend.denied", token: "subject" });
  });

  it("a delegation token is refused as the bearer of every route", async () => {
    const globex = (await vendFor("bob", "globex", { template: "tenant-gated" })).json.taskId;
    // Even one whose user is an admin and approver of the task's tenant.
    const asBearer = await sign(users, {
      sub: "globex-admin",
      tenant: "globex",
      groups: ["jitv-admins", "jitv-approvers"],
      act: { sub: "support-bot", iss: bots.issuer },
    });
    const audienceToken = await sign(users, {
      sub: "globex-admin",
      tenant: "globex",
      groups: ["jitv-admins", "jitv-approvers"],
      aud: ["jitv", DELEGATION_AUDIENCE],
    });
    for (const token of [asBearer, audienceToken]) {
      for (const [method, path] of [
        ["GET", `/v1/tasks/${globex}`],
        ["POST", `/v1/tasks/${globex}/approve`],
        ["POST", `/v1/tasks/${globex}/revoke`],
        ["GET", "/v1/tasks"],
        ["GET", "/v1/agents"],
        ["POST", "/v1/tasks"],
      ] as const) {
        expectError(
          await call(
            method,
            path,
            token,
            method === "POST" ? { reason: "x", template: "tenant-read" } : undefined,
          ),
          401,
          "invalid_token",
        );
      }
    }
    expect(await taskStatus(globex)).toBe("pending_approval");
  });
});

describe("a customer identity provider asserts only its own tenants", () => {
  it("refuses a tenant outside the profile's tenants list with 403, creating nothing", async () => {
    const outsider = await sign(partner, {
      sub: "eve",
      tenant: "acme",
      act: { sub: "support-bot", iss: bots.issuer },
    });
    expectError(
      await call("POST", "/v1/tasks", await bot(), { template: "tenant-read", subjectToken: outsider }),
      403,
      "forbidden",
    );
    const own = await sign(partner, {
      sub: "eve",
      tenant: "initech",
      act: { sub: "support-bot", iss: bots.issuer },
    });
    expect(
      (await call("POST", "/v1/tasks", await bot(), { template: "tenant-read", subjectToken: own })).status,
    ).toBe(201);
    const unknown = await delegation("mallory", "umbrella");
    expectError(
      await call("POST", "/v1/tasks", await bot(), { template: "tenant-read", subjectToken: unknown }),
      403,
      "forbidden",
    );
  });
});

describe("idempotent replays must match and are authorized again", () => {
  it("a replay for another tenant is 409 with no credentials; the same request gets the same task", async () => {
    const key = `k-${randomUUID()}`;
    const template = "tenant-prefixed";
    const first = await vendFor("alice", "acme", { template, key, parameters: { prefix: "a" } });
    expect(first.status).toBe(201);
    const otherTenant = await vendFor("bob", "globex", { template, key, parameters: { prefix: "a" } });
    expectError(otherTenant, 409, "conflict");
    expect(otherTenant.json.credentials).toBeUndefined();
    // Audited as refused, never as allowed.
    expect(audit.events.at(-1)).toMatchObject({
      event: "vend.denied",
      tenant: "globex",
      taskId: first.json.taskId,
    });
    expectError(
      await vendFor("alice", "acme", { template, key, parameters: { prefix: "b" } }),
      409,
      "conflict",
    );
    expectError(await vendFor("alice", "acme", { key }), 409, "conflict");
    const same = await vendFor("alice", "acme", { template, key, parameters: { prefix: "a" } });
    expect(same.status).toBe(201);
    expect(same.json.taskId).toBe(first.json.taskId);
    expect(same.json.credentials.AccessKeyId).toEqual(expect.any(String));
  });

  it("a Cedar forbid added after the first request refuses the replay", async () => {
    const key = `k-${randomUUID()}`;
    expect((await vendFor("alice", "acme", { key })).status).toBe(201);
    await storePolicies(`@id("acme-suspended") @reason("tenant acme is suspended")
forbid (principal, action == Jitv::Action::"Refresh", resource) when { context has tenant && context.tenant == "acme" };`);
    const replay = await vendFor("alice", "acme", { key });
    expectError(replay, 403, "forbidden");
    expect(replay.json.error.message).toContain("acme-suspended");
  });

  it("after an approval wait longer than the first deadline, the key still names the same task", async () => {
    const key = `k-${randomUUID()}`;
    const pending = await vendFor("alice", "acme", { template: "tenant-gated", key });
    expect(pending.status).toBe(202);
    offsetMs += 800_000; // within the 900 s approval timeout
    const approver = await customerStaff("acme-approver", "acme", ["jitv-approvers"]);
    expect((await call("POST", `/v1/tasks/${pending.json.taskId}/approve`, approver)).json.status).toBe(
      "active",
    );
    const record = await table.doc.send(
      new GetCommand({
        TableName: table.tableName,
        Key: idempotencyKey(bots.issuer, "support-bot", key),
      }),
    );
    offsetMs += 200_000; // past the approval deadline the record first had
    expect(record.Item?.ttlEpoch).toBeGreaterThan(Math.floor(now() / 1000));
    const replay = await vendFor("alice", "acme", { template: "tenant-gated", key });
    expect(replay.status).toBe(201);
    expect(replay.json.taskId).toBe(pending.json.taskId);
  });
});

describe("target accounts: no credential where revocation cannot reach", () => {
  it("refuses to store a template whose role is in an unregistered account, and never vends from one", async () => {
    const outside = parseTemplate({
      name: "elsewhere-read",
      zone: "workforce",
      roleArn: "arn:aws:iam::999999999999:role/jitv/reader",
      sessionPolicy: {
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::reports/*" }],
      },
      agents: [{ issuer: agents.issuer, subjects: ["agent-a"] }],
    });
    await expect(core.templates.put(outside)).rejects.toThrow(
      /999999999999, which is not a registered target account/,
    );
    // Written around the check (an older jitv, or by hand): the vend is still refused, nothing stored.
    await new DynamoTemplateStore({ client: table.doc, tableName: table.tableName }).put(outside);
    const before = audit.events.length;
    const res = await call("POST", "/v1/tasks", await sign(agents, { sub: "agent-a" }), {
      template: "elsewhere-read",
    });
    expectError(res, 403, "forbidden");
    expect(audit.events.slice(before).map((e) => e.event)).toEqual(["vend.denied"]);
  });
});

describe("STS source identity", () => {
  it("stays distinct for agent ids that sanitise alike", async () => {
    const sent: string[] = [];
    for (const sub of ["team:a", "team/a"]) {
      const res = await call("POST", "/v1/tasks", await sign(agents, { sub }), { template: "reports-read" });
      expect(res.status).toBe(201);
      sent.push(broker.requests.at(-1)?.sourceIdentity ?? "");
    }
    expect(sent[0]).not.toBe(sent[1]);
    for (const value of sent) expect(value).toMatch(/^[\w+=,.@-]{2,64}$/);
  });
});

describe("audit and rates", () => {
  it("audits vend.allowed after the tokens are consumed, with the purpose", async () => {
    const res = await call("POST", "/v1/tasks", await bot(), {
      template: "tenant-read",
      subjectToken: await delegation("alice", "acme"),
      purpose: "answer ticket 42",
    });
    expect(res.status).toBe(201);
    expect(audit.events.find((e) => e.event === "vend.allowed")).toMatchObject({
      taskId: res.json.taskId,
      purpose: "answer ticket 42",
      user: "alice",
      tenant: "acme",
    });
    // A replayed agent token: denied, never "allowed" first.
    const token = await bot();
    audit.events.length = 0;
    await call("POST", "/v1/tasks", token, {
      template: "tenant-read",
      subjectToken: await delegation("alice", "acme"),
    });
    await call("POST", "/v1/tasks", token, {
      template: "tenant-read",
      subjectToken: await delegation("alice", "acme"),
    });
    expect(audit.events.map((e) => e.event)).toEqual(["vend.allowed", "credentials.issued", "vend.denied"]);
  });

  it("refresh draws from a per-agent bucket: 429 once it is empty", async () => {
    const agent = "support-bot-2";
    const taskId = (await vendFor("alice", "acme", { agent })).json.taskId;
    const statuses: number[] = [];
    for (let i = 0; i < 61; i++) {
      statuses.push((await call("POST", `/v1/tasks/${taskId}/credentials`, await bot(agent))).status);
    }
    expect(statuses.slice(0, 60).every((s) => s === 200)).toBe(true);
    expect(statuses.at(-1)).toBe(429);
  });
});
