// biome-ignore-all lint/suspicious/noTemplateCurlyInString: IAM policy variables like ${aws:username} are test data
import { Logger } from "@aws-lambda-powertools/logger";
import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { MemoryAuditLog } from "../../../lib/audit/logger-audit-log.js";
import type { CredentialBroker } from "../../../lib/credentials/broker.js";
import { SandboxBroker } from "../../../lib/credentials/sandbox-broker.js";
import { UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import { lintTemplate } from "../../../lib/domain/render.js";
import type { AssumeRoleRequest } from "../../../lib/domain/sts.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { type ApiCore, composeApi } from "../../../lib/http/compose-api.js";
import { CONTRACT_ROUTES } from "../../../lib/http/contract.js";
import type { HttpResponse } from "../../../lib/http/types.js";
import { parseIssuerConfig } from "../../../lib/identity/issuers.js";
import type { LifecycleStarter, TaskTokenSender } from "../../../lib/tasks/lifecycle.js";
import { apiClient, type Json } from "../../support/api-client.js";
import { createTestTable } from "../../support/dynamodb.js";
import { startTestIssuer, type TestIssuer } from "../../support/test-issuer.js";

// The HTTP API end to end: real DynamoDB Local, real tokens from real JWKS servers on
// 127.0.0.1, the same core the Lambdas and the sandbox run. Only the broker differs.

let agents: TestIssuer;
let customerAgents: TestIssuer;
let users: TestIssuer;
let staff: TestIssuer;
let core: ApiCore;
let table: Awaited<ReturnType<typeof createTestTable>>;
let audit: MemoryAuditLog;
let logLines: string[];
const sandboxBroker = new SandboxBroker();
let failNext: Error | undefined;
// The lifecycle execution of every task, started before STS is called (contract section 6).
const started = new Set<string>();
let failStart = false;
/** Added to the real clock: moved past the authorizer's 5 s policy cache after a policy write. */
let offsetMs = 0;
const lifecycle: LifecycleStarter = {
  start: async (task) => {
    if (failStart) throw new Error("Step Functions unavailable");
    started.add(task.taskId);
  },
};
const tokens: TaskTokenSender = { sendSuccess: async () => undefined };
const broker: CredentialBroker = {
  assumeRole: async (request: AssumeRoleRequest) => {
    if (!started.has(request.roleSessionName))
      throw new Error("STS called before the lifecycle was scheduled");
    if (failNext) {
      const err = failNext;
      failNext = undefined;
      throw err;
    }
    return sandboxBroker.assumeRole(request);
  },
};

const workforceTemplate = {
  name: "reports-read",
  zone: "workforce",
  roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
  sessionPolicy: {
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Action: ["s3:GetObject"],
        Resource: ["arn:aws:s3:::reports/{{params.prefix}}/*", "arn:aws:s3:::reports/${aws:username}/*"],
      },
    ],
  },
  parameters: { prefix: { pattern: "^[a-z0-9-]{1,32}$" } },
  agents: [] as { issuer: string; subjects: string[] }[],
  ttl: { defaultSeconds: 900, maxSeconds: 3600 },
};

const customerTemplate = {
  name: "tenant-read",
  zone: "customer",
  roleArn: "arn:aws:iam::123456789012:role/jitv/tenant-reader",
  sessionPolicy: {
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::data/{{tenant}}/*" }],
  },
  agents: [] as { issuer: string; subjects: string[] }[],
};

beforeAll(async () => {
  [agents, customerAgents, users, staff, table] = await Promise.all([
    startTestIssuer({ alg: "RS256" }),
    startTestIssuer({ alg: "ES256" }),
    startTestIssuer({ alg: "ES256" }),
    startTestIssuer({ alg: "ES256" }),
    createTestTable(),
  ]);
  const issuers = parseIssuerConfig({
    issuers: [
      agents.profile({ name: "agents", kind: "agent", zone: "workforce" }),
      customerAgents.profile({ name: "customer-agents", kind: "agent", zone: "customer" }),
      users.profile({
        name: "users",
        kind: "user",
        zone: "customer",
        claims: { user: "sub", tenant: "tenant" },
      }),
      staff.profile({
        name: "staff",
        kind: "user",
        zone: "workforce",
        claims: { user: "sub", tenant: "tenant" },
      }),
    ],
    admins: { issuer: users.issuer, claim: "groups", values: ["jitv-admins"] },
  });
  audit = new MemoryAuditLog();
  logLines = [];
  const logger = new Logger({ serviceName: "jitv-test", logLevel: "DEBUG" });
  // Capture what would be written to CloudWatch (Powertools writes to process.stdout),
  // to prove no token or secret is ever logged.
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    logLines.push(String(chunk));
    return true;
  });
  core = composeApi({
    doc: table.doc,
    tableName: table.tableName,
    issuers,
    broker,
    lifecycle,
    tokens,
    logger,
    audit,
    now: () => new Date(Date.now() + offsetMs),
  });
  workforceTemplate.agents = [{ issuer: agents.issuer, subjects: ["agent-a"] }];
  customerTemplate.agents = [{ issuer: customerAgents.issuer, subjects: ["support-bot"] }];
  for (const t of [workforceTemplate, customerTemplate]) {
    const parsed = parseTemplate(t);
    lintTemplate(parsed);
    await core.templates.put(parsed);
  }
});

afterAll(async () => {
  await Promise.all([agents?.close(), customerAgents?.close(), users?.close(), staff?.close()]);
});

beforeEach(() => {
  failNext = undefined;
  failStart = false;
});

const call = apiClient(() => core.api);

const agentToken = (sub = "agent-a", claims: Record<string, unknown> = {}) => agents.sign({ sub, ...claims });
/** A user's delegation token for support-bot (RFC 8693 `act`), as the contract requires of a subjectToken. */
const delegated = (claims: Record<string, unknown>) => users.sign({ act: { sub: "support-bot" }, ...claims });
const vend = async (body: unknown, token?: string, headers?: Record<string, string>) =>
  call("POST", "/v1/tasks", { token: token ?? (await agentToken()), body, ...(headers ? { headers } : {}) });

async function tasksOf(issuer: string, agentId: string) {
  const out = await table.doc.send(
    new QueryCommand({
      TableName: table.tableName,
      IndexName: "gsi1",
      KeyConditionExpression: "gsi1pk = :pk",
      ExpressionAttributeValues: {
        ":pk": `AGENT#${encodeURIComponent(issuer)}#${encodeURIComponent(agentId)}`,
      },
    }),
  );
  return out.Items ?? [];
}

function expectError(res: HttpResponse & { json: Json }, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.json).toEqual({ error: { code, message: expect.any(String) } });
  expect(res.headers["x-request-id"]).toMatch(/^req-/);
}

describe("POST /v1/tasks", () => {
  it("vends credentials for an allowed agent (201) and records a durable task", async () => {
    const res = await vend({
      template: "reports-read",
      parameters: { prefix: "q3" },
      purpose: "summarise Q3",
    });
    expect(res.status).toBe(201);
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.json).toMatchObject({
      taskId: expect.stringMatching(/^tsk_/),
      status: "active",
      template: "reports-read",
      agent: { issuer: agents.issuer, id: "agent-a" },
      purpose: "summarise Q3",
      credentials: {
        AccessKeyId: expect.stringMatching(/^JITVSANDBOX/),
        SecretAccessKey: expect.any(String),
        SessionToken: expect.any(String),
        Expiration: expect.any(String),
      },
    });
    expect(res.json.onBehalfOf).toBeUndefined();
    expect(Date.parse(res.json.credentials.Expiration)).toBeLessThanOrEqual(Date.parse(res.json.expiresAt));
    expect(Date.parse(res.json.expiresAt) - Date.parse(res.json.createdAt)).toBe(900_000);

    const sent = sandboxBroker.lastRequestFor(res.json.taskId);
    expect(sent?.roleArn).toBe(workforceTemplate.roleArn);
    expect(JSON.parse(sent?.policy ?? "{}").Statement[0].Resource).toEqual([
      "arn:aws:s3:::reports/q3/*",
      "arn:aws:s3:::reports/${aws:username}/*",
    ]);
    const stored = await core.tasks.get(res.json.taskId);
    expect(stored).toMatchObject({ status: "active", issuedCount: 1, template: "reports-read" });

    const read = await call("GET", `/v1/tasks/${res.json.taskId}`, { token: await agentToken() });
    expect(read.status).toBe(200);
    expect(read.json).toMatchObject({ taskId: res.json.taskId, status: "active" });
    expect(read.json.credentials).toBeUndefined();
  });

  it("vends for a customer-facing agent on behalf of a user, binding the user's tenant", async () => {
    const subjectToken = await delegated({ sub: "alice", tenant: "acme" });
    const token = await customerAgents.sign({ sub: "support-bot" });
    const res = await vend({ template: "tenant-read", subjectToken }, token);
    expect(res.status).toBe(201);
    expect(res.json.onBehalfOf).toEqual({ user: "alice", tenant: "acme" });
    const sent = sandboxBroker.lastRequestFor(res.json.taskId);
    expect(JSON.parse(sent?.policy ?? "{}").Statement[0].Resource).toBe("arn:aws:s3:::data/acme/*");
    expect(sent?.tags).toEqual(
      expect.arrayContaining([
        { Key: "jitv:user", Value: "alice" },
        { Key: "jitv:tenant", Value: "acme" },
        { Key: "jitv:agent", Value: "support-bot" },
      ]),
    );
  });

  it.each([
    ["malformed JSON", "{not json"],
    [
      "an unknown field",
      JSON.stringify({ template: "reports-read", parameters: { prefix: "a" }, role: "admin" }),
    ],
    [
      "ttl below STS's minimum",
      JSON.stringify({ template: "reports-read", parameters: { prefix: "a" }, ttlSeconds: 60 }),
    ],
    [
      "ttl over the template's max",
      JSON.stringify({ template: "reports-read", parameters: { prefix: "a" }, ttlSeconds: 7200 }),
    ],
    [
      "a parameter failing its pattern",
      JSON.stringify({ template: "reports-read", parameters: { prefix: "a*" } }),
    ],
    ["a missing parameter", JSON.stringify({ template: "reports-read" })],
    [
      "an undeclared parameter",
      JSON.stringify({ template: "reports-read", parameters: { prefix: "a", x: "b" } }),
    ],
    ["a body over 16 KiB", JSON.stringify({ template: "reports-read", purpose: "x".repeat(17_000) })],
    [
      "a subject token for a workforce template",
      JSON.stringify({ template: "reports-read", parameters: { prefix: "a" }, subjectToken: "x.y.z" }),
    ],
  ])("answers 400 invalid_request for %s and writes nothing", async (_name, rawBody) => {
    const before = (await tasksOf(agents.issuer, "agent-a")).length;
    const res = await call("POST", "/v1/tasks", { token: await agentToken(), rawBody });
    expectError(res, 400, "invalid_request");
    expect((await tasksOf(agents.issuer, "agent-a")).length).toBe(before);
  });

  it("answers 400 when a customer-zone template gets no subject token", async () => {
    const res = await vend({ template: "tenant-read" }, await customerAgents.sign({ sub: "support-bot" }));
    expectError(res, 400, "invalid_request");
  });

  it("answers 400 for a malformed Idempotency-Key", async () => {
    const res = await vend({ template: "reports-read", parameters: { prefix: "a" } }, undefined, {
      "idempotency-key": "x".repeat(129),
    });
    expectError(res, 400, "invalid_request");
  });

  it("answers 401 with WWW-Authenticate for a missing or bad token", async () => {
    for (const token of [undefined, "not-a-jwt", `${await agentToken()}x`]) {
      const res = await call("POST", "/v1/tasks", {
        ...(token ? { token } : {}),
        body: { template: "reports-read", parameters: { prefix: "a" } },
      });
      expectError(res, 401, "invalid_token");
      expect(res.headers["WWW-Authenticate"] ?? res.headers["www-authenticate"]).toBe(
        'Bearer error="invalid_token"',
      );
    }
  });

  it("refuses a replayed token (jti is single-use for vending) and writes nothing the second time", async () => {
    const token = await agentToken("agent-a", { jti: `jti-${Date.now()}` });
    const first = await vend({ template: "reports-read", parameters: { prefix: "a" } }, token);
    expect(first.status).toBe(201);
    const before = (await tasksOf(agents.issuer, "agent-a")).length;
    const second = await vend({ template: "reports-read", parameters: { prefix: "a" } }, token);
    expectError(second, 401, "invalid_token");
    expect((await tasksOf(agents.issuer, "agent-a")).length).toBe(before);
  });

  it("answers 401 for a subject token that fails verification", async () => {
    const subjectToken = await agents.sign({ sub: "alice", tenant: "acme" }); // an agent token, not a user's
    const res = await vend(
      { template: "tenant-read", subjectToken },
      await customerAgents.sign({ sub: "support-bot" }),
    );
    expectError(res, 401, "invalid_token");
  });

  it.each([["*"], ["a/b"], ["${aws:username}"], ['"}]}'], ["acme\n"]])(
    "answers 403 for an unsafe tenant claim %j and never renders it",
    async (tenant) => {
      const before = sandboxBroker.requests.length;
      const subjectToken = await delegated({ sub: "mallory", tenant });
      const res = await vend(
        { template: "tenant-read", subjectToken },
        await customerAgents.sign({ sub: "support-bot" }),
      );
      expectError(res, 403, "forbidden");
      expect(sandboxBroker.requests.length).toBe(before);
    },
  );

  it("accepts a user token exchanged for this agent (RFC 8693 act) and refuses one exchanged for another", async () => {
    const agentToken = () => customerAgents.sign({ sub: "support-bot" });
    const forMe = await users.sign({ sub: "alice", tenant: "acme", act: { sub: "support-bot" } });
    expect((await vend({ template: "tenant-read", subjectToken: forMe }, await agentToken())).status).toBe(
      201,
    );
    const forOther = await users.sign({ sub: "alice", tenant: "acme", act: { sub: "other-bot" } });
    expectError(
      await vend({ template: "tenant-read", subjectToken: forOther }, await agentToken()),
      403,
      "forbidden",
    );
  });

  it("answers 403 for a subject token from the other trust zone's user issuer", async () => {
    const workforceUser = await staff.sign({ sub: "alice", tenant: "acme", act: { sub: "support-bot" } });
    const res = await vend(
      { template: "tenant-read", subjectToken: workforceUser },
      await customerAgents.sign({ sub: "support-bot" }),
    );
    expectError(res, 403, "forbidden");
  });

  it("answers 401 for a user token minted for another audience, and 403 for a missing tenant claim", async () => {
    const agentToken = () => customerAgents.sign({ sub: "support-bot" });
    const otherAudience = await delegated({ sub: "alice", tenant: "acme", aud: "another-app" });
    expectError(
      await vend({ template: "tenant-read", subjectToken: otherAudience }, await agentToken()),
      401,
      "invalid_token",
    );
    const noTenant = await delegated({ sub: "alice" });
    expectError(
      await vend({ template: "tenant-read", subjectToken: noTenant }, await agentToken()),
      403,
      "forbidden",
    );
  });

  it("answers 403 for an agent not in the template's list, and audits the denial", async () => {
    const res = await vend(
      { template: "reports-read", parameters: { prefix: "a" } },
      await agentToken("agent-z"),
    );
    expectError(res, 403, "forbidden");
    const denials = audit.events.filter((e) => e.requestId === res.headers["x-request-id"]);
    expect(denials).toHaveLength(1);
    expect(denials[0]).toMatchObject({
      event: "vend.denied",
      template: "reports-read",
      agent: { issuer: agents.issuer, id: "agent-z" },
      reason: expect.stringContaining("agents list"),
    });
  });

  it("answers 403 when a workforce agent asks for a customer-zone template", async () => {
    const subjectToken = await delegated({ sub: "alice", tenant: "acme" });
    const res = await vend({ template: "tenant-read", subjectToken }, await agentToken());
    expectError(res, 403, "forbidden");
  });

  it("answers 404 for an unknown template", async () => {
    expectError(await vend({ template: "nope" }), 404, "not_found");
  });

  it("returns one task for 20 concurrent requests with the same Idempotency-Key", async () => {
    const key = `idem-${Date.now()}`;
    const tokens = await Promise.all(Array.from({ length: 20 }, () => agentToken("agent-idem-check")));
    // agent-idem-check must be allowed: add it to a dedicated template
    const template = parseTemplate({
      ...workforceTemplate,
      name: "idem-read",
      agents: [{ issuer: agents.issuer, subjects: ["agent-idem-check"] }],
    });
    await core.templates.put(template);
    const results = await Promise.all(
      tokens.map((token) =>
        vend({ template: "idem-read", parameters: { prefix: "a" } }, token, { "idempotency-key": key }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(201));
    expect(new Set(results.map((r) => r.json.taskId)).size).toBe(1);
    expect(results.every((r) => r.json.credentials?.AccessKeyId)).toBe(true);
    expect(await tasksOf(agents.issuer, "agent-idem-check")).toHaveLength(1);
  });

  /** The task a request recorded, found by the request's id in the audit trail. */
  const taskOfRequest = (requestId: string | undefined) => {
    const allowed = audit.events.filter((e) => e.event === "vend.allowed" && e.requestId === requestId);
    expect(allowed).toHaveLength(1);
    return allowed[0]?.taskId as string;
  };

  it("marks the task failed and returns 503 with no credentials when the broker fails", async () => {
    failNext = new UpstreamUnavailableError("STS unavailable after retries");
    const res = await vend({ template: "reports-read", parameters: { prefix: "a" } });
    expectError(res, 503, "upstream_unavailable");
    expect(res.body).not.toContain("AccessKeyId");
    const taskId = taskOfRequest(res.headers["x-request-id"]);
    expect(started.has(taskId)).toBe(true);
    expect(await core.tasks.get(taskId)).toMatchObject({
      status: "failed",
      reason: "STS unavailable after retries",
      issuedCount: 0,
    });
    const read = await call("GET", `/v1/tasks/${taskId}`, { token: await agentToken() });
    expect(read.json).toMatchObject({ taskId, status: "failed" });
  });

  it("marks the task failed and issues nothing when its lifecycle cannot be scheduled", async () => {
    failStart = true;
    const before = sandboxBroker.requests.length;
    const res = await vend({ template: "reports-read", parameters: { prefix: "a" } });
    expectError(res, 503, "upstream_unavailable");
    expect(sandboxBroker.requests.length).toBe(before);
    const taskId = taskOfRequest(res.headers["x-request-id"]);
    expect(started.has(taskId)).toBe(false);
    expect(await core.tasks.get(taskId)).toMatchObject({
      status: "failed",
      reason: "could not schedule the task's lifecycle",
      issuedCount: 0,
    });
  });

  it("never logs tokens or credentials", async () => {
    const token = await agentToken();
    const ok = await vend({ template: "reports-read", parameters: { prefix: "a" } }, token);
    const subjectToken = await delegated({ sub: "alice", tenant: "*" });
    await vend({ template: "tenant-read", subjectToken }, await customerAgents.sign({ sub: "support-bot" }));
    const logs = logLines.join("\n");
    expect(ok.status).toBe(201);
    expect(logs).toContain(`"requestId":"${ok.headers["x-request-id"]}"`);
    expect(logs).not.toContain(token);
    expect(logs).not.toContain(subjectToken);
    expect(logs).not.toContain(ok.json.credentials.SecretAccessKey);
    expect(logs).not.toContain(ok.json.credentials.SessionToken);
  });
});

describe("GET /v1/tasks/{id}", () => {
  it("answers 404 for another agent's task, an unknown task and a malformed id", async () => {
    const res = await vend({ template: "reports-read", parameters: { prefix: "a" } });
    const other = await call("GET", `/v1/tasks/${res.json.taskId}`, { token: await agentToken("agent-b") });
    expectError(other, 404, "not_found");
    const unknown = await call("GET", "/v1/tasks/tsk_00000000000000000000000000", {
      token: await agentToken(),
    });
    expectError(unknown, 404, "not_found");
    const malformed = await call("GET", "/v1/tasks/..%2Fetc", { token: await agentToken() });
    expectError(malformed, 404, "not_found");
  });

  it("lets a customer-zone admin read its own tenant's tasks, and no other", async () => {
    const subjectToken = await delegated({ sub: "alice", tenant: "acme" });
    const customer = await vend(
      { template: "tenant-read", subjectToken },
      await customerAgents.sign({ sub: "support-bot" }),
    );
    const admin = await users.sign({ sub: "root", groups: ["jitv-admins"], tenant: "acme" });
    const read = await call("GET", `/v1/tasks/${customer.json.taskId}`, { token: admin });
    expect(read.status).toBe(200);
    const otherTenant = await users.sign({ sub: "root", groups: ["jitv-admins"], tenant: "ops" });
    expectError(
      await call("GET", `/v1/tasks/${customer.json.taskId}`, { token: otherTenant }),
      404,
      "not_found",
    );
    const notAdmin = await users.sign({ sub: "eve", groups: ["staff"], tenant: "acme" });
    expectError(
      await call("GET", `/v1/tasks/${customer.json.taskId}`, { token: notAdmin }),
      404,
      "not_found",
    );
    const workforce = await vend({ template: "reports-read", parameters: { prefix: "a" } });
    expectError(await call("GET", `/v1/tasks/${workforce.json.taskId}`, { token: admin }), 404, "not_found");
  });
});

describe("limits", () => {
  it("caps active tasks per agent and template (maxActivePerAgent) under concurrency: 429", async () => {
    await core.templates.put(
      parseTemplate({
        ...workforceTemplate,
        name: "capped-read",
        maxActivePerAgent: 2,
        agents: [{ issuer: agents.issuer, subjects: ["agent-capped"] }],
      }),
    );
    const tokens = await Promise.all(Array.from({ length: 6 }, () => agentToken("agent-capped")));
    const results = await Promise.all(
      tokens.map((t) => vend({ template: "capped-read", parameters: { prefix: "a" } }, t)),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(2);
    for (const r of results.filter((r) => r.status !== 201)) expectError(r, 429, "rate_limited");
    // Completing one frees its slot.
    const first = results.find((r) => r.status === 201);
    await call("POST", `/v1/tasks/${first?.json.taskId}/complete`, {
      token: await agentToken("agent-capped"),
    });
    expect(
      (await vend({ template: "capped-read", parameters: { prefix: "a" } }, await agentToken("agent-capped")))
        .status,
    ).toBe(201);
  });

  it("limits each agent's vend rate with a token bucket: 429 with Retry-After", async () => {
    await core.templates.put(
      parseTemplate({
        ...workforceTemplate,
        name: "rate-read",
        agents: [{ issuer: agents.issuer, subjects: ["agent-rate"] }],
      }),
    );
    const limited = composeApi({
      doc: table.doc,
      tableName: table.tableName,
      issuers: parseIssuerConfig({
        issuers: [agents.profile({ name: "agents", kind: "agent", zone: "workforce" })],
      }),
      broker,
      lifecycle,
      tokens,
      audit: new MemoryAuditLog(),
      vendRate: { capacity: 2, refillPerSecond: 0.01 },
    });
    const send = (token: string) =>
      limited.api({
        method: "POST",
        path: "/v1/tasks",
        headers: { authorization: `Bearer ${token}` },
        query: {},
        body: JSON.stringify({ template: "rate-read", parameters: { prefix: "a" } }),
        requestId: "req-rate",
      });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await send(await agentToken("agent-rate"))).status);
    expect(statuses).toEqual([201, 201, 429]);
    const refused = await send(await agentToken("agent-rate"));
    expect(refused.status).toBe(429);
    expect(Number(refused.headers["Retry-After"])).toBeGreaterThan(0);
    expect(JSON.parse(refused.body)).toEqual({
      error: { code: "rate_limited", message: expect.any(String) },
    });
  });
});

describe("Cedar policies on the request context", () => {
  it("decides on the caller's source IP, naming the deciding policy in the 403", async () => {
    await core.templates.put(
      parseTemplate({
        ...workforceTemplate,
        name: "ip-guarded",
        agents: [{ issuer: agents.issuer, subjects: ["agent-ip"] }],
      }),
    );
    await core.policies.put(
      "network",
      `@id("ip-guarded-from-corp-network")
@reason("ip-guarded is vended only from the corporate network")
forbid (principal, action == Jitv::Action::"Vend", resource == Jitv::Template::"ip-guarded")
unless { context has sourceIp && context.sourceIp.isInRange(ip("10.0.0.0/8")) };`,
    );
    const from = async (sourceIp: string) =>
      core.api({
        method: "POST",
        path: "/v1/tasks",
        headers: { authorization: `Bearer ${await agentToken("agent-ip")}` },
        query: {},
        body: JSON.stringify({ template: "ip-guarded", parameters: { prefix: "a" } }),
        requestId: "req-ip",
        sourceIp,
      });
    // Policies are reloaded when their version changes, checked at most every 5 s per container:
    // the service's clock moves past that.
    offsetMs += 6_000;
    const outside = await from("192.168.1.5");
    expect(outside.status).toBe(403);
    expect(JSON.parse(outside.body).error.message).toBe(
      "forbidden by policy ip-guarded-from-corp-network (ip-guarded is vended only from the corporate network)",
    );
    expect((await from("10.1.2.3")).status).toBe(201);
  });
});

describe("admin inventory", () => {
  it("lists a customer-zone admin's tenant's active tasks and agents; refuses others", async () => {
    const subjectToken = await delegated({ sub: "alice", tenant: "acme" });
    const vended = await vend(
      { template: "tenant-read", subjectToken },
      await customerAgents.sign({ sub: "support-bot" }),
    );
    const admin = await users.sign({ sub: "root", groups: ["jitv-admins"], tenant: "acme" });
    const tasks = await call("GET", "/v1/tasks", { token: admin });
    expect(tasks.status).toBe(200);
    const ids = tasks.json.tasks.map((t: { taskId: string }) => t.taskId);
    expect(ids).toContain(vended.json.taskId);
    expect(
      tasks.json.tasks.every(
        (t: { agent: { issuer: string }; onBehalfOf: { tenant: string } }) =>
          t.agent.issuer === customerAgents.issuer && t.onBehalfOf.tenant === "acme",
      ),
    ).toBe(true);
    const otherTenant = await users.sign({ sub: "root", groups: ["jitv-admins"], tenant: "ops" });
    expect((await call("GET", "/v1/tasks", { token: otherTenant })).json.tasks).toEqual([]);
    const agentsList = await call("GET", "/v1/agents", { token: admin });
    expect(agentsList.json.agents).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ issuer: customerAgents.issuer, id: "support-bot", zone: "customer" }),
      ]),
    );
    expectError(await call("GET", "/v1/tasks", { token: await agentToken() }), 403, "forbidden");
  });
});

describe("GET /healthz", () => {
  it("answers 200 without auth", async () => {
    const res = await call("GET", "/healthz");
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ ok: true });
  });
});

describe("GET /v1/openapi.json", () => {
  it("serves, without auth, the OpenAPI 3.1 document of every contract route, from the schemas that validate", async () => {
    const res = await call("GET", "/v1/openapi.json");
    expect(res.status).toBe(200);
    expect(res.json.openapi).toBe("3.1.0");
    const operations = Object.entries(res.json.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(operations.sort()).toEqual(CONTRACT_ROUTES.map((r) => `${r.method} ${r.path}`).sort());
    const vendBody = res.json.paths["/v1/tasks"].post.requestBody.content["application/json"].schema;
    expect(vendBody).toMatchObject({
      type: "object",
      required: ["template"],
      additionalProperties: false,
      properties: { purpose: { type: "string", maxLength: 256 }, template: { minLength: 1, maxLength: 64 } },
    });
    // What the document says is what the API enforces: an unknown field and an over-long purpose are refused.
    for (const body of [
      { template: "reports-read", extra: 1 },
      { template: "reports-read", purpose: "x".repeat(257) },
    ]) {
      expectError(await vend(body), 400, "invalid_request");
    }
    expect(
      res.json.paths["/v1/tasks/{taskId}/revoke"].post.requestBody.content["application/json"].schema,
    ).toMatchObject({
      required: ["reason"],
    });
    expect(res.json.paths["/v1/tasks"].get.parameters.map((p: { name: string }) => p.name)).toEqual([
      "status",
      "agent",
      "issuer",
      "template",
      "limit",
      "nextToken",
    ]);
  });
});
