import { Logger } from "@aws-lambda-powertools/logger";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MemoryAuditLog } from "../../../lib/audit/logger-audit-log.js";
import { SandboxBroker } from "../../../lib/credentials/sandbox-broker.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { type ApiCore, composeApi } from "../../../lib/http/compose-api.js";
import type { HttpResponse } from "../../../lib/http/types.js";
import { parseIssuerConfig } from "../../../lib/identity/issuers.js";
import { apiClient, type Json } from "../../support/api-client.js";
import { createTestTable } from "../../support/dynamodb.js";
import { startTestIssuer, type TestIssuer } from "../../support/test-issuer.js";

// One Cedar engine decides every action through the HTTP API: the built-in baseline keeps a
// deployment with no stored policy working, and a stored forbid on any action takes effect
// (403 naming the policy) after the code checks (404 for other agents' tasks, 409s).

let agents: TestIssuer;
let staff: TestIssuer;
let core: ApiCore;
let audit: MemoryAuditLog;
/** Added to the real clock: moved past the authorizer's 5 s policy cache after each write. */
let offsetMs = 0;

beforeAll(async () => {
  let table: Awaited<ReturnType<typeof createTestTable>>;
  [agents, staff, table] = await Promise.all([
    startTestIssuer({ alg: "ES256" }),
    startTestIssuer({ alg: "ES256" }),
    createTestTable(),
  ]);
  const issuers = parseIssuerConfig({
    issuers: [
      agents.profile({ name: "agents", kind: "agent", zone: "workforce" }),
      staff.profile({
        name: "staff",
        kind: "user",
        zone: "workforce",
        claims: { user: "sub", tenant: "tenant" },
      }),
    ],
    admins: { issuer: staff.issuer, claim: "groups", values: ["jitv-admins"] },
    approvers: { issuer: staff.issuer, claim: "groups", values: ["jitv-approvers"] },
  });
  audit = new MemoryAuditLog();
  core = composeApi({
    doc: table.doc,
    tableName: table.tableName,
    issuers,
    broker: new SandboxBroker(),
    lifecycle: { start: async () => undefined },
    tokens: { sendSuccess: async () => undefined },
    logger: new Logger({ serviceName: "jitv-test", logLevel: "CRITICAL" }),
    audit,
    now: () => new Date(Date.now() + offsetMs),
  });
  const base = {
    zone: "workforce",
    roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
    sessionPolicy: {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::reports/*" }],
    },
    agents: [{ issuer: agents.issuer, subjects: ["agent-a", "agent-b"] }],
  };
  await core.templates.put(parseTemplate({ ...base, name: "reports-read" }));
  await core.templates.put(parseTemplate({ ...base, name: "gated", approval: { required: true } }));
});

afterAll(async () => {
  await Promise.all([agents?.close(), staff?.close()]);
});

/** Replaces the stored test policy set and lets the authorizer pick it up. */
async function storePolicies(text: string): Promise<void> {
  await core.policies.put("test-forbids", text);
  offsetMs += 6000;
}

beforeEach(async () => {
  await storePolicies("");
  audit.events.length = 0;
});

const client = apiClient(() => core.api);
const call = (method: string, path: string, token: string, body?: unknown) =>
  client(method, path, { token, body });

const agent = (sub = "agent-a") => agents.sign({ sub });
const admin = () => staff.sign({ sub: "root", groups: ["jitv-admins"], tenant: "ops" });
const approver = (sub: string) => staff.sign({ sub, groups: ["jitv-approvers"], tenant: "ops" });

async function vend(template = "reports-read"): Promise<string> {
  const res = await call("POST", "/v1/tasks", await agent(), { template });
  expect(res.status).toBe(template === "gated" ? 202 : 201);
  return res.json.taskId;
}

function expectForbiddenBy(res: HttpResponse & { json: Json }, policy: string, reason: string) {
  expect(res.status).toBe(403);
  expect(res.json).toEqual({
    error: { code: "forbidden", message: `forbidden by policy ${policy} (${reason})` },
  });
}

function deniedEvents() {
  return audit.events.filter((e) => e.event === "access.denied");
}

describe("the built-in baseline, with no stored policy", () => {
  it("lets owners, admins and approvers do their jobs", async () => {
    await expect(core.policies.list()).resolves.toMatchObject([{ name: "test-forbids", policyIds: [] }]);
    const taskId = await vend();

    expect((await call("GET", `/v1/tasks/${taskId}`, await agent())).status).toBe(200);
    expect((await call("GET", `/v1/tasks/${taskId}`, await admin())).status).toBe(200);
    expect((await call("POST", `/v1/tasks/${taskId}/credentials`, await agent())).status).toBe(200);
    expect((await call("GET", "/v1/tasks", await admin())).status).toBe(200);
    expect((await call("GET", "/v1/agents", await admin())).status).toBe(200);
    expect((await call("POST", `/v1/tasks/${taskId}/complete`, await agent())).status).toBe(200);

    const gated = await vend("gated");
    expect((await call("POST", `/v1/tasks/${gated}/approve`, await approver("pat"))).json).toMatchObject({
      status: "active",
      approvals: 1,
    });
    expect((await call("POST", `/v1/tasks/${gated}/revoke`, await admin(), { reason: "done" })).status).toBe(
      200,
    );
    expect(deniedEvents()).toEqual([]);
  });

  it("keeps the code's answers for callers it never asks Cedar about", async () => {
    const taskId = await vend();

    expect((await call("GET", `/v1/tasks/${taskId}`, await agent("agent-b"))).status).toBe(404);
    expect((await call("POST", `/v1/tasks/${taskId}/credentials`, await agent("agent-b"))).status).toBe(404);
    expect((await call("POST", `/v1/tasks/${taskId}/revoke`, await agent(), { reason: "x" })).status).toBe(
      403,
    );
    expect((await call("GET", "/v1/tasks", await approver("pat"))).status).toBe(403);
    expect(deniedEvents()).toEqual([]);
  });
});

describe("a stored forbid on one action", () => {
  it("ReadTask: refuses admins with 403 naming the policy, audited; the owner still reads", async () => {
    await storePolicies(`@id("no-admin-reads") @reason("admins read the audit log instead")
forbid (principal is Jitv::User, action == Jitv::Action::"ReadTask", resource);`);
    const taskId = await vend();

    const refused = await call("GET", `/v1/tasks/${taskId}`, await admin());
    expectForbiddenBy(refused, "no-admin-reads", "admins read the audit log instead");
    expect(deniedEvents()).toEqual([
      expect.objectContaining({
        action: "ReadTask",
        taskId,
        caller: expect.objectContaining({ id: "root", kind: "user" }),
        policies: ["no-admin-reads"],
        policyVersion: expect.stringContaining("test-forbids@"),
        requestId: refused.headers["x-request-id"],
      }),
    ]);
    expect((await call("GET", `/v1/tasks/${taskId}`, await agent())).status).toBe(200);
    // Other agents still get the contract's 404, not a 403 that would confirm the task exists.
    expect((await call("GET", `/v1/tasks/${taskId}`, await agent("agent-b"))).status).toBe(404);
    expect((await call("GET", "/v1/tasks", await admin())).status).toBe(200);
  });

  it("Refresh: refuses fresh credentials; completing the task still works", async () => {
    await storePolicies(`@id("refresh-freeze") @reason("credential refresh is frozen")
forbid (principal, action == Jitv::Action::"Refresh", resource);`);
    const taskId = await vend();

    expectForbiddenBy(
      await call("POST", `/v1/tasks/${taskId}/credentials`, await agent()),
      "refresh-freeze",
      "credential refresh is frozen",
    );
    expect(deniedEvents()).toEqual([
      expect.objectContaining({ action: "Refresh", taskId, policies: ["refresh-freeze"] }),
    ]);
    expect((await call("GET", `/v1/tasks/${taskId}`, await agent())).status).toBe(200);
    expect((await call("POST", `/v1/tasks/${taskId}/complete`, await agent())).status).toBe(200);
    // The 409 for a task that is no longer active comes before Cedar.
    expect((await call("POST", `/v1/tasks/${taskId}/credentials`, await agent())).status).toBe(409);
  });

  it("Revoke: refuses the admin and leaves the task active; a 409 still comes first", async () => {
    await storePolicies(`@id("no-revoke") @reason("revocations go through change control")
forbid (principal, action == Jitv::Action::"Revoke", resource);`);
    const taskId = await vend();

    expectForbiddenBy(
      await call("POST", `/v1/tasks/${taskId}/revoke`, await admin(), { reason: "suspicious" }),
      "no-revoke",
      "revocations go through change control",
    );
    expect(deniedEvents()).toEqual([
      expect.objectContaining({ action: "Revoke", taskId, policies: ["no-revoke"] }),
    ]);
    expect((await call("GET", `/v1/tasks/${taskId}`, await admin())).json.status).toBe("active");
    expect((await call("POST", `/v1/tasks/${taskId}/complete`, await agent())).status).toBe(200);
    expect((await call("POST", `/v1/tasks/${taskId}/revoke`, await admin(), { reason: "x" })).status).toBe(
      409,
    );
  });

  it("Approve: refuses one approver (approve and deny); another still activates the task", async () => {
    await storePolicies(`@id("pat-may-not-approve") @reason("pat is on leave")
forbid (principal, action == Jitv::Action::"Approve", resource) when { principal.id == "pat" };`);
    const taskId = await vend("gated");

    expectForbiddenBy(
      await call("POST", `/v1/tasks/${taskId}/approve`, await approver("pat")),
      "pat-may-not-approve",
      "pat is on leave",
    );
    expectForbiddenBy(
      await call("POST", `/v1/tasks/${taskId}/deny`, await approver("pat"), {}),
      "pat-may-not-approve",
      "pat is on leave",
    );
    expect(deniedEvents()).toHaveLength(2);
    expect(deniedEvents()[0]).toMatchObject({
      action: "Approve",
      taskId,
      policies: ["pat-may-not-approve"],
    });
    expect((await call("POST", `/v1/tasks/${taskId}/approve`, await approver("quinn"))).json).toMatchObject({
      status: "active",
      approvals: 1,
    });
  });

  it("ListAgents: refuses the admin's agent inventory; the task inventory still answers", async () => {
    await storePolicies(`@id("no-agent-inventory") @reason("the agent inventory is disabled")
forbid (principal, action == Jitv::Action::"ListAgents", resource);`);

    expectForbiddenBy(
      await call("GET", "/v1/agents", await admin()),
      "no-agent-inventory",
      "the agent inventory is disabled",
    );
    expect(deniedEvents()).toEqual([
      expect.objectContaining({ action: "ListAgents", zone: "workforce", policies: ["no-agent-inventory"] }),
    ]);
    expect((await call("GET", "/v1/tasks", await admin())).status).toBe(200);
    // Non-admins are still refused by the admins rule first.
    expect((await call("GET", "/v1/agents", await agent())).json.error.message).toBe(
      "only admins may list agents",
    );
  });
});
