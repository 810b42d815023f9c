import { Logger } from "@aws-lambda-powertools/logger";
import type { JWTPayload } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { composeLifecycle } from "../../../lib/app/compose-lifecycle.js";
import type { TaskLifecycle } from "../../../lib/app/lifecycle-steps.js";
import type { AuditEvent, AuditLog } from "../../../lib/audit/audit-log.js";
import { LoggerAuditLog, MemoryAuditLog } from "../../../lib/audit/logger-audit-log.js";
import { MemoryMetrics } from "../../../lib/audit/metrics.js";
import { SandboxBroker } from "../../../lib/credentials/sandbox-broker.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { type ApiCore, composeApi } from "../../../lib/http/compose-api.js";
import { parseIssuerConfig } from "../../../lib/identity/issuers.js";
import { DynamoRolePolicyWriter } from "../../../lib/revocation/dynamo-role-policy-writer.js";
import { LocalLifecycleRunner } from "../../../lib/sandbox/local-lifecycle.js";
import { DynamoSecretRotator } from "../../../lib/secrets/dynamo-secret-rotator.js";
import { apiClient } from "../../support/api-client.js";
import { createTestTable } from "../../support/dynamodb.js";
import { startTestIssuer, type TestIssuer } from "../../support/test-issuer.js";

// Every audit event type a task's life produces (CONTRACT.md section 6), through the HTTP API
// and the lifecycle steps run by the real ASL: each names the agent, the user and tenant it acts
// for, the template and the task (and the purpose, where one was given), and no token or
// credential ever appears in an audit event or a log line. DynamoDB Local, real tokens from
// real JWKS servers.

const SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jitv-test/tenant-db-a1B2c3";

let agents: TestIssuer;
let users: TestIssuer;
let core: ApiCore;
let runner: LocalLifecycleRunner;
const audit = new MemoryAuditLog();
/** What the Logger wrote (Powertools writes to process.stdout), audit lines included. */
const logLines: string[] = [];
/** Every token the test signed and every credential the API handed out: none may be logged. */
const secrets = new Set<string>();
/** Added to the real clock: moved past the authorizer's 5 s policy cache after a policy write. */
let offsetMs = 0;
const now = () => Date.now() + offsetMs;

beforeAll(async () => {
  let table: Awaited<ReturnType<typeof createTestTable>>;
  [agents, users, table] = await Promise.all([
    startTestIssuer({ alg: "ES256" }),
    startTestIssuer({ alg: "ES256" }),
    createTestTable(),
  ]);
  const issuers = parseIssuerConfig({
    issuers: [
      agents.profile({ name: "bots", kind: "agent", zone: "customer" }),
      users.profile({
        name: "users",
        kind: "user",
        zone: "customer",
        claims: { tenant: "tenant", groups: "groups" },
        tenants: ["acme", "globex"],
      }),
    ],
    admins: { issuer: users.issuer, claim: "groups", values: ["jitv-admins"] },
    approvers: { issuer: users.issuer, claim: "groups", values: ["jitv-approvers"] },
  });
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    logLines.push(String(chunk));
    return true;
  });
  const logger = new Logger({ serviceName: "jitv-test", logLevel: "DEBUG" });
  // The trail as the tests read it, and as CloudWatch would receive it.
  const logged = new LoggerAuditLog(logger);
  const trail: AuditLog = {
    record: (event) => {
      audit.record(event);
      logged.record(event);
    },
  };
  const clock = () => new Date(now());
  const rotator = new DynamoSecretRotator({ client: table.doc, tableName: table.tableName });
  await rotator.ensure(SECRET_ARN);
  let lifecycle: TaskLifecycle | undefined;
  runner = new LocalLifecycleRunner({ steps: () => lifecycle as TaskLifecycle });
  lifecycle = composeLifecycle({
    doc: table.doc,
    tableName: table.tableName,
    writer: new DynamoRolePolicyWriter({ client: table.doc, tableName: table.tableName }),
    rotator,
    tokens: runner,
    audit: trail,
    metrics: new MemoryMetrics(),
    now: clock,
  });
  core = composeApi({
    doc: table.doc,
    tableName: table.tableName,
    issuers,
    broker: new SandboxBroker(),
    lifecycle: runner,
    tokens: runner,
    logger,
    audit: trail,
    now: clock,
  });
  const customer = {
    zone: "customer",
    roleArn: "arn:aws:iam::123456789012:role/jitv/tenant-db",
    sessionPolicy: {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::exports/{{tenant}}/*" }],
    },
    agents: [{ issuer: agents.issuer, subjects: ["support-bot"] }],
  };
  await core.templates.put(
    parseTemplate({ ...customer, name: "tenant-db", secrets: [{ arn: SECRET_ARN, rotateOnEnd: true }] }),
  );
  await core.templates.put(
    parseTemplate({
      ...customer,
      name: "tenant-gated",
      approval: { required: true, quorum: 2, timeoutSeconds: 900 },
    }),
  );
});

afterAll(async () => {
  runner?.close();
  vi.restoreAllMocks();
  await Promise.all([agents?.close(), users?.close()]);
});

afterEach(() => {
  expectNothingSecretIn(JSON.stringify(audit.events), "an audit event");
  expectNothingSecretIn(logLines.join(""), "a log line");
});

function expectNothingSecretIn(text: string, where: string) {
  for (const secret of secrets) {
    expect(text.includes(secret), `${where} contains ${secret.slice(0, 12)}…`).toBe(false);
  }
}

/** Signs on the service's clock; the token and its signature are remembered as secrets. */
async function sign(issuer: TestIssuer, claims: JWTPayload): Promise<string> {
  const iat = Math.floor(now() / 1000);
  const token = await issuer.sign({ iat, exp: iat + 300, ...claims });
  secrets.add(token);
  secrets.add(token.split(".")[2] as string);
  return token;
}

const bot = (sub = "support-bot") => sign(agents, { sub });
/** Alice of acme's delegation token for one agent (RFC 8693 `act`). */
const delegation = (agent = "support-bot") =>
  sign(users, { sub: "alice", tenant: "acme", act: { sub: agent } });
const acmeStaff = (sub: string, groups: string[]) => sign(users, { sub, tenant: "acme", groups });

const client = apiClient(() => core.api);
/** Calls the API; the credentials it answers with are remembered as secrets. */
async function call(method: string, path: string, token: string, body?: unknown) {
  const response = await client(method, path, { token, body });
  for (const key of ["AccessKeyId", "SecretAccessKey", "SessionToken"]) {
    const value = response.json.credentials?.[key];
    if (value) secrets.add(value);
  }
  return response;
}

/** The audit events one request recorded, in order. */
const eventsOf = (requestId: string) => audit.events.filter((e) => e.requestId === requestId);
/** The events of one task recorded outside any request (the lifecycle's), in order. */
const lifecycleEventsOf = (taskId: string) =>
  audit.events.filter((e) => e.taskId === taskId && e.requestId === undefined);

const BOT = () => ({ issuer: agents.issuer, id: "support-bot" });
/** The fields every event about a task of alice of acme carries. */
const aliceTask = (taskId: string, template = "tenant-db") => ({
  taskId,
  template,
  agent: BOT(),
  user: "alice",
  tenant: "acme",
});

async function vend(body: Record<string, unknown> = {}) {
  const res = await call("POST", "/v1/tasks", await bot(), {
    template: "tenant-db",
    subjectToken: await delegation(),
    ...body,
  });
  expect(res.status, JSON.stringify(res.json)).toBe(body.template === "tenant-gated" ? 202 : 201);
  return res;
}

describe("audit events", () => {
  it("vend.allowed and credentials.issued on a vend: agent, user, tenant, template, task, purpose", async () => {
    const res = await vend({ purpose: "export Q3 for a support ticket" });
    const { taskId } = res.json;

    expect(eventsOf(res.requestId)).toEqual([
      {
        event: "vend.allowed",
        requestId: res.requestId,
        ...aliceTask(taskId),
        purpose: "export Q3 for a support ticket",
        policies: ["template:tenant-db:agents"],
        // No policy set is stored yet: the version of none.
        policyVersion: "",
      },
      {
        event: "credentials.issued",
        requestId: res.requestId,
        ...aliceTask(taskId),
        durationSeconds: 900,
      },
    ]);
  });

  it("credentials.issued on a refresh", async () => {
    const { taskId } = (await vend()).json;
    const refresh = await call("POST", `/v1/tasks/${taskId}/credentials`, await bot());
    expect(refresh.status).toBe(200);

    expect(eventsOf(refresh.requestId)).toEqual([
      {
        event: "credentials.issued",
        requestId: refresh.requestId,
        ...aliceTask(taskId),
        // STS's shortest session; the credential's Expiration is then capped at the task's deadline.
        durationSeconds: 900,
      },
    ]);
  });

  it("task.completed, then the lifecycle's secret.rotated and task.closed", async () => {
    const { taskId } = (await vend()).json;
    const done = await call("POST", `/v1/tasks/${taskId}/complete`, await bot());
    expect(done.status).toBe(200);
    expect(eventsOf(done.requestId)).toEqual([
      { event: "task.completed", requestId: done.requestId, ...aliceTask(taskId) },
    ]);

    await runner.execution(taskId); // the lifecycle runs to its end
    expect(lifecycleEventsOf(taskId)).toEqual([
      { event: "secret.rotated", ...aliceTask(taskId), secret: SECRET_ARN },
      { event: "task.closed", ...aliceTask(taskId) },
    ]);
  });

  it("task.revoked: who revoked it and why", async () => {
    const { taskId } = (await vend()).json;
    const revoked = await call(
      "POST",
      `/v1/tasks/${taskId}/revoke`,
      await acmeStaff("carol", ["jitv-admins"]),
      {
        reason: "the ticket was closed",
      },
    );
    expect(revoked.status).toBe(200);

    expect(eventsOf(revoked.requestId)).toEqual([
      {
        event: "task.revoked",
        requestId: revoked.requestId,
        ...aliceTask(taskId),
        reason: "the ticket was closed",
        revokedBy: "carol",
      },
    ]);
    await runner.execution(taskId); // the lifecycle runs to its end
    expect(lifecycleEventsOf(taskId).map((e) => e.event)).toEqual(["secret.rotated", "task.closed"]);
  });

  it("task.pending_approval, approval.recorded for each approver, task.approved at the quorum", async () => {
    const vended = await vend({ template: "tenant-gated", purpose: "bulk export" });
    const { taskId } = vended.json;
    const task = aliceTask(taskId, "tenant-gated");
    expect(eventsOf(vended.requestId)).toEqual([
      {
        event: "vend.allowed",
        requestId: vended.requestId,
        ...task,
        purpose: "bulk export",
        policies: ["template:tenant-gated:agents"],
        policyVersion: "",
      },
      { event: "task.pending_approval", requestId: vended.requestId, ...task, quorum: 2 },
    ]);

    const first = await call(
      "POST",
      `/v1/tasks/${taskId}/approve`,
      await acmeStaff("ann", ["jitv-approvers"]),
    );
    expect(first.json).toMatchObject({ status: "pending_approval", approvals: 1 });
    expect(eventsOf(first.requestId)).toEqual([
      {
        event: "approval.recorded",
        requestId: first.requestId,
        ...task,
        approver: "ann",
        approvals: 1,
        quorum: 2,
      },
    ]);

    const second = await call(
      "POST",
      `/v1/tasks/${taskId}/approve`,
      await acmeStaff("ben", ["jitv-approvers"]),
    );
    expect(second.json).toMatchObject({ status: "active", approvals: 2 });
    expect(eventsOf(second.requestId)).toEqual([
      {
        event: "approval.recorded",
        requestId: second.requestId,
        ...task,
        approver: "ben",
        approvals: 2,
        quorum: 2,
      },
      { event: "task.approved", requestId: second.requestId, ...task, approvals: 2 },
    ]);
  });

  it("task.denied: the approver who refused and the reason", async () => {
    const { taskId } = (await vend({ template: "tenant-gated" })).json;
    const refused = await call(
      "POST",
      `/v1/tasks/${taskId}/deny`,
      await acmeStaff("ann", ["jitv-approvers"]),
      {
        reason: "no ticket for this",
      },
    );
    expect(refused.json).toEqual({ taskId, status: "denied", approvals: 0 });

    expect(eventsOf(refused.requestId)).toEqual([
      {
        event: "task.denied",
        requestId: refused.requestId,
        ...aliceTask(taskId, "tenant-gated"),
        approver: "ann",
        reason: "no ticket for this",
      },
    ]);
  });

  it("vend.denied: an agent outside the template's list, with the user and tenant it acted for", async () => {
    const res = await call("POST", "/v1/tasks", await bot("support-bot-2"), {
      template: "tenant-db",
      subjectToken: await delegation("support-bot-2"),
      purpose: "look around",
    });
    expect(res.status).toBe(403);

    expect(eventsOf(res.requestId)).toEqual([
      {
        event: "vend.denied",
        requestId: res.requestId,
        template: "tenant-db",
        agent: { issuer: agents.issuer, id: "support-bot-2" },
        user: "alice",
        tenant: "acme",
        reason: res.json.error.message,
        policies: [],
        policyVersion: "",
      },
    ]);
  });

  it("access.denied: the action, the task and its people, the caller and the deciding policy", async () => {
    const { taskId } = (await vend()).json;
    await core.policies.put(
      "audit-test",
      `@id("tenant-db-refresh-freeze") @reason("tenant-db credentials are frozen")
forbid (principal, action == Jitv::Action::"Refresh", resource);`,
    );
    offsetMs += 6_000;

    const refused = await call("POST", `/v1/tasks/${taskId}/credentials`, await bot());
    expect(refused.status).toBe(403);
    expect(eventsOf(refused.requestId)).toEqual([
      {
        event: "access.denied",
        requestId: refused.requestId,
        action: "Refresh",
        ...aliceTask(taskId),
        caller: { issuer: agents.issuer, id: "support-bot", kind: "agent" },
        reason: "forbidden by policy tenant-db-refresh-freeze (tenant-db credentials are frozen)",
        policies: ["tenant-db-refresh-freeze"],
        policyVersion: expect.stringMatching(/^audit-test@/),
      },
    ]);
  });

  it("never puts a token, a credential or a lifecycle task token in an audit event or a log line", async () => {
    // Every task's Step Functions task tokens are capabilities too.
    const taskIds = new Set(audit.events.map((e: AuditEvent) => e.taskId).filter((id) => id !== undefined));
    for (const taskId of taskIds) {
      const task = await core.tasks.get(taskId as string);
      for (const token of [task?.taskToken, task?.approvalToken]) if (token) secrets.add(token);
    }
    const kinds = new Set(audit.events.map((e) => e.event));
    expect([...kinds].sort()).toEqual(
      [
        "access.denied",
        "approval.recorded",
        "credentials.issued",
        "secret.rotated",
        "task.approved",
        "task.closed",
        "task.completed",
        "task.denied",
        "task.pending_approval",
        "task.revoked",
        "vend.allowed",
        "vend.denied",
      ].sort(),
    );
    // Every event was logged as one audit line.
    expect(logLines.filter((line) => line.includes('"message":"audit"'))).toHaveLength(audit.events.length);
    expect(secrets.size).toBeGreaterThan(50);
    expectNothingSecretIn(JSON.stringify(audit.events), "an audit event");
    expectNothingSecretIn(logLines.join(""), "a log line");
  });
});
