import { describe, expect, it } from "vitest";
import { AccessControl } from "../../../lib/app/access.js";
import { TaskService, type VendInput, type VendOptions } from "../../../lib/app/task-service.js";
import { CedarAuthorizer } from "../../../lib/authz/cedar-authorizer.js";
import { StaffRoles } from "../../../lib/authz/roles.js";
import {
  ConflictError,
  ForbiddenError,
  InvalidRequestError,
  InvalidTokenError,
  NotFoundError,
  RateLimitedError,
  UpstreamUnavailableError,
} from "../../../lib/domain/errors.js";
import type { VerifiedIdentity } from "../../../lib/domain/identity.js";
import type { Task } from "../../../lib/domain/task.js";
import {
  CallJournal,
  FakeClock,
  JournalAuditLog,
  MemoryAgentRegistry,
  MemoryCredentialBroker,
  MemoryLifecycle,
  MemoryNotifier,
  MemoryRateLimiter,
  MemoryTaskRepository,
  MemoryTaskTokens,
  MemoryTemplateStore,
  MemoryVerifier,
} from "../../support/fakes.js";
import {
  AGENTS,
  agent,
  CUSTOMER_AGENTS,
  customerAgent,
  customerTemplate,
  FakePolicyStore,
  TUESDAY_10,
  template,
  USERS,
  user,
} from "../authz/fixtures.js";

const STAFF = "https://staff.example";
const TOKEN_EXP = 2_000_000_000;
const taskIdNo = (n: number) => `tsk_${String(n).padStart(26, "0")}`;
const TASK_1 = taskIdNo(1);
const TASK_2 = taskIdNo(2);

const reportsPolicy = {
  Version: "2012-10-17",
  Statement: [
    { Effect: "Allow", Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::reports/{{params.prefix}}/*"] },
  ],
};
// Credentials as long as the task (up to an hour), so one credential covers a whole 1800 s task.
const reportsRead = template("reports-read", {
  sessionPolicy: reportsPolicy,
  ttl: { defaultSeconds: 900, maxSeconds: 3600, credentialMaxSeconds: 3600 },
});
const deploy = template("deploy", {
  parameters: {},
  approval: { required: true, quorum: 2, timeoutSeconds: 7200 },
});
const tenantReports = customerTemplate("tenant-reports", {
  sessionPolicy: {
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Action: ["s3:GetObject"],
        Resource: ["arn:aws:s3:::tenants/{{tenant}}/{{params.prefix}}/*"],
      },
    ],
  },
});
const limited = template("limited", { parameters: {}, maxActivePerAgent: 1 });

const agentA = (jti: string) => agent("agent-a", { jti });
const supportAgent = (jti: string): VerifiedIdentity => ({ ...customerAgent("support-agent"), jti });
const alice = (tenant = "acme"): VerifiedIdentity =>
  user("alice", tenant, {
    jti: `jti-alice-${tenant}`,
    actor: { sub: "support-agent", iss: CUSTOMER_AGENTS },
  });
const workforceAdmin = user("root", undefined, {
  profile: "staff",
  issuer: STAFF,
  zone: "workforce",
  claims: { roles: ["jitv-admin"] },
});
const tenantAdmin = (tenant: string) =>
  user(`admin-${tenant}`, tenant, { claims: { roles: ["tenant-admin"] } });
const roles = new StaffRoles(
  [
    { issuer: STAFF, claim: "roles", values: ["jitv-admin"] },
    { issuer: USERS, claim: "roles", values: ["tenant-admin"] },
  ],
  [
    { issuer: STAFF, claim: "roles", values: ["jitv-approver"] },
    { issuer: USERS, claim: "roles", values: ["tenant-approver"] },
  ],
);

function world(options: { policies?: string; capacity?: number; refillPerSecond?: number } = {}) {
  const clock = new FakeClock(TUESDAY_10);
  const journal = new CallJournal();
  const common = { journal, now: clock.now };
  const verifier = new MemoryVerifier(
    { "subject-alice": alice(), "subject-alice-globex": alice("globex") },
    common,
  );
  const templates = new MemoryTemplateStore([reportsRead, deploy, tenantReports, limited], common);
  const broker = new MemoryCredentialBroker(common);
  const audit = new JournalAuditLog(journal);
  const lifecycle = new MemoryLifecycle(common);
  const tokens = new MemoryTaskTokens(common);
  const notifier = new MemoryNotifier(common);
  const rateLimiter = new MemoryRateLimiter({
    ...common,
    ...(options.capacity === undefined ? {} : { capacity: options.capacity }),
    ...(options.refillPerSecond === undefined ? {} : { refillPerSecond: options.refillPerSecond }),
  });
  // The vend's rate token and its tokens' jti are taken by the task's create (one transaction).
  const tasks = new MemoryTaskRepository({ ...common, rateLimiter });
  const agents = new MemoryAgentRegistry(common);
  const authorizer = new CedarAuthorizer({
    store: new FakePolicyStore(options.policies ?? ""),
    now: clock.now,
  });
  const access = new AccessControl({ authorizer, roles, audit });
  let issuedIds = 0;
  const service = new TaskService({
    verifier,
    templates,
    tasks,
    authorizer,
    broker,
    audit,
    lifecycle,
    tokens,
    notifier,
    roles,
    access,
    rateLimiter,
    agents,
    now: clock.now,
    newTaskId: () => taskIdNo(++issuedIds),
  });
  return {
    clock,
    journal,
    verifier,
    templates,
    tasks,
    broker,
    audit,
    lifecycle,
    tokens,
    notifier,
    rateLimiter,
    agents,
    service,
  };
}
type World = ReturnType<typeof world>;

const reportsInput: VendInput = {
  template: "reports-read",
  parameters: { prefix: "q3" },
  purpose: "quarterly report",
  ttlSeconds: 1800,
};
const customerInput: VendInput = {
  template: "tenant-reports",
  parameters: { prefix: "invoices" },
  subjectToken: "subject-alice",
};

/** The rejection of `promise`, failing the test when it resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection");
}

async function expectRefusal(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => Error,
  message: string,
): Promise<Error> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(type);
  expect(error.message).toBe(message);
  return error;
}

/** A vend of reports-read that succeeded, with the given Idempotency-Key. */
/** Lets every pending promise chain that does not wait on a held call run to its end. */
function settle(): Promise<void> {
  return new Promise((done) => setImmediate(done));
}

async function vendReports(w: World, jti = "jti-a1", options: VendOptions = { requestId: "req-1" }) {
  return w.service.vend(agentA(jti), reportsInput, options);
}

describe("TaskService.vend: admission refusals write nothing", () => {
  const refusals: {
    name: string;
    who: VerifiedIdentity;
    input: VendInput;
    policies?: string;
    error: abstract new (...args: never[]) => Error;
    reason: string;
    extra?: Record<string, unknown>;
  }[] = [
    {
      name: "an agent of the other zone",
      who: supportAgent("jti-s1"),
      input: reportsInput,
      error: ForbiddenError,
      reason: "a customer-zone agent cannot use a workforce-zone template",
    },
    {
      name: "a customer-zone template without a subjectToken",
      who: supportAgent("jti-s1"),
      input: { template: "tenant-reports", parameters: { prefix: "invoices" } },
      error: InvalidRequestError,
      reason: "subjectToken is required for this template",
    },
    {
      name: "a ttl below 900 seconds",
      who: agentA("jti-a1"),
      input: { ...reportsInput, ttlSeconds: 899 },
      error: InvalidRequestError,
      reason: "ttlSeconds must be between 900 and 3600",
    },
    {
      name: "a ttl above the template's maximum",
      who: agentA("jti-a1"),
      input: { ...reportsInput, ttlSeconds: 3601 },
      error: InvalidRequestError,
      reason: "ttlSeconds must be between 900 and 3600",
    },
    {
      name: "a parameter that does not match its pattern",
      who: agentA("jti-a1"),
      input: { ...reportsInput, parameters: { prefix: "Q3" } },
      error: InvalidRequestError,
      reason: 'parameter "prefix" does not match its declared pattern',
    },
    {
      name: "an agent Cedar does not permit",
      who: agent("agent-z", { jti: "jti-z1" }),
      input: reportsInput,
      error: ForbiddenError,
      reason: "no policy permits this request (the agent is not in the template's agents list)",
      extra: { policies: [], policyVersion: "v1" },
    },
    {
      name: "a request a stored Cedar forbid denies",
      who: agentA("jti-a1"),
      input: { ...reportsInput, parameters: { prefix: "secret-plans" } },
      policies: `@id("no-secret-prefix")
@reason("the prefix 'secret' is off limits")
forbid (principal, action == Jitv::Action::"Vend", resource)
when { context.parameters.hasTag("prefix") && context.parameters.getTag("prefix") like "secret*" };`,
      error: ForbiddenError,
      reason: "forbidden by policy no-secret-prefix (the prefix 'secret' is off limits)",
      extra: { policies: ["no-secret-prefix"], policyVersion: "v1" },
    },
  ];

  it.each(refusals)("refuses $name, audited vend.denied only", async (refusal) => {
    const w = world(refusal.policies === undefined ? {} : { policies: refusal.policies });

    await expectRefusal(
      w.service.vend(refusal.who, refusal.input, { requestId: "req-9" }),
      refusal.error,
      refusal.reason,
    );

    expect(w.audit.events).toEqual([
      {
        event: "vend.denied",
        requestId: "req-9",
        template: refusal.input.template,
        agent: { issuer: refusal.who.issuer, id: refusal.who.id },
        reason: refusal.reason,
        ...refusal.extra,
      },
    ]);
    expect(w.rateLimiter.consumed).toEqual([]);
    expect(w.tasks.usedTokens.size).toBe(0);
    expect(w.tasks.calls).toEqual([]);
    expect(w.tasks.all()).toEqual([]);
    expect(w.agents.calls).toEqual([]);
    expect(w.lifecycle.calls).toEqual([]);
    expect(w.broker.calls).toEqual([]);
  });

  it("answers an unknown template 404 before anything else, without an audit event", async () => {
    const w = world();

    await expectRefusal(
      w.service.vend(agentA("jti-a1"), { ...reportsInput, template: "nope" }),
      NotFoundError,
      "unknown template",
    );

    expect(w.journal.labels()).toEqual(["templates.get"]);
    expect(w.audit.events).toEqual([]);
  });

  it("refuses a subject token that another agent was named the actor of", async () => {
    const w = world();
    w.verifier.add("subject-for-other", user("alice", "acme", { actor: { sub: "other-agent" } }));

    await expectRefusal(
      w.service.vend(supportAgent("jti-s1"), { ...customerInput, subjectToken: "subject-for-other" }),
      ForbiddenError,
      "the subject token was issued to another actor",
    );

    expect(w.audit.names()).toEqual(["vend.denied"]);
    expect(w.tasks.usedTokens.size).toBe(0);
    expect(w.tasks.all()).toEqual([]);
  });

  it("refuses a replayed agent token 401, naming the token in the audit, and writes nothing more", async () => {
    const w = world();
    await vendReports(w, "jti-a1");

    await expectRefusal(
      vendReports(w, "jti-a1", { requestId: "req-2" }),
      InvalidTokenError,
      "token already used",
    );

    expect(w.audit.events.at(-1)).toEqual({
      event: "vend.denied",
      requestId: "req-2",
      template: "reports-read",
      agent: { issuer: AGENTS, id: "agent-a" },
      reason: "token already used",
      token: "agent",
    });
    expect(w.audit.names()).toEqual(["vend.allowed", "credentials.issued", "vend.denied"]);
    expect(w.tasks.all().map((t) => t.taskId)).toEqual([TASK_1]);
    expect(w.broker.calls).toHaveLength(1);
    // The refused create took no rate token.
    expect(w.rateLimiter.consumed).toHaveLength(1);
  });

  it("refuses a replayed subject token 401 and creates no task", async () => {
    const w = world();
    w.tasks.usedTokens.set(`${USERS}|jti-alice-acme`, TOKEN_EXP + 300);

    await expectRefusal(
      w.service.vend(supportAgent("jti-s1"), customerInput, { requestId: "req-3" }),
      InvalidTokenError,
      "token already used",
    );

    // Spent with the task, all or nothing: a replayed subject token never burns the agent's token.
    expect([...w.tasks.usedTokens.keys()]).toEqual([`${USERS}|jti-alice-acme`]);
    expect(w.tasks.callsOf("create")).toHaveLength(1);
    expect(w.audit.events).toEqual([
      {
        event: "vend.denied",
        requestId: "req-3",
        template: "tenant-reports",
        agent: { issuer: CUSTOMER_AGENTS, id: "support-agent" },
        user: "alice",
        tenant: "acme",
        reason: "token already used",
        token: "subject",
      },
    ]);
    expect(w.tasks.all()).toEqual([]);
    expect(w.broker.calls).toEqual([]);
  });
});

describe("TaskService.vend: a successful vend", () => {
  it("records the task with its claims in one create, audits, schedules beside issuing, then records the issue", async () => {
    const w = world();

    const result = await w.service.vend(agentA("jti-a1"), reportsInput, {
      requestId: "req-1",
      sourceIp: "192.0.2.10",
    });

    const policy =
      '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::reports/q3/*"]}]}';
    const expectedTask: Task = {
      taskId: TASK_1,
      status: "active",
      template: "reports-read",
      zone: "workforce",
      roleArn: "arn:aws:iam::123456789012:role/jitv/reader",
      agent: { issuer: AGENTS, id: "agent-a" },
      purpose: "quarterly report",
      parameters: { prefix: "q3" },
      sessionPolicy: policy,
      createdAt: "2026-03-03T10:00:00.000Z",
      expiresAt: "2026-03-03T10:30:00.000Z",
      ttlSeconds: 1800,
      issuedCount: 0,
    };
    expect(result.status).toBe(201);
    expect(result.task).toEqual(expectedTask);
    expect(result.credentials).toEqual({
      AccessKeyId: "ASIAFAKE000000000001",
      SecretAccessKey: "fake-secret-000000000001",
      SessionToken: `fake-session-${TASK_1}-000000000001`,
      Expiration: "2026-03-03T10:30:00.000Z",
    });
    expect(Date.parse(result.credentials?.Expiration ?? "")).toBeLessThanOrEqual(
      Date.parse(result.task.expiresAt),
    );

    // One write before the lifecycle and STS, which run side by side; the issue is recorded last.
    expect(w.journal.labels()).toEqual([
      "templates.get",
      "tasks.create",
      "audit.vend.allowed",
      "agents.recordAgentSeen",
      "lifecycle.start",
      "broker.assumeRole",
      "tasks.recordIssue",
      "audit.credentials.issued",
    ]);
    expect(w.tasks.callsOf("create")).toEqual([
      [
        expectedTask,
        { rate: true, tokens: [{ issuer: AGENTS, jti: "jti-a1", expiresAt: TOKEN_EXP, role: "agent" }] },
      ],
    ]);
    expect([...w.tasks.usedTokens.keys()]).toEqual([`${AGENTS}|jti-a1`]);
    expect(w.rateLimiter.consumed).toEqual([{ agent: { issuer: AGENTS, id: "agent-a" }, bucket: "vend" }]);
    expect(w.lifecycle.executions).toEqual(
      new Map([
        [
          TASK_1,
          { taskId: TASK_1, timeoutSeconds: 1800, approvalRequired: false, approvalTimeoutSeconds: 1800 },
        ],
      ]),
    );
    expect(w.broker.requests).toEqual([
      {
        roleArn: "arn:aws:iam::123456789012:role/jitv/reader",
        roleSessionName: TASK_1,
        sourceIdentity: "agent-a",
        policy,
        tags: [
          { Key: "jitv:task", Value: TASK_1 },
          { Key: "jitv:agent", Value: "agent-a" },
          { Key: "jitv:template", Value: "reports-read" },
        ],
        durationSeconds: 1800,
      },
    ]);
    expect(w.tasks.callsOf("recordIssue")).toEqual([[TASK_1, "2026-03-03T10:30:00.000Z"]]);
    expect(w.tasks.peek(TASK_1)).toEqual({
      ...expectedTask,
      issuedCount: 1,
      lastCredentialExpiry: "2026-03-03T10:30:00.000Z",
    });
    expect(w.agents.callsOf("recordAgentSeen")).toEqual([
      [{ issuer: AGENTS, id: "agent-a", zone: "workforce" }, TUESDAY_10, {}],
    ]);
    expect(w.audit.events).toEqual([
      {
        event: "vend.allowed",
        requestId: "req-1",
        template: "reports-read",
        agent: { issuer: AGENTS, id: "agent-a" },
        taskId: TASK_1,
        purpose: "quarterly report",
        policies: ["template:reports-read:agents"],
        policyVersion: "v1",
      },
      {
        event: "credentials.issued",
        requestId: "req-1",
        taskId: TASK_1,
        template: "reports-read",
        agent: { issuer: AGENTS, id: "agent-a" },
        durationSeconds: 1800,
      },
    ]);
  });

  it("consumes the agent's and the subject token's jti for a delegated vend", async () => {
    const w = world();

    const result = await w.service.vend(supportAgent("jti-s1"), customerInput, { requestId: "req-4" });

    expect(result.status).toBe(201);
    expect(result.task.onBehalfOf).toEqual({ issuer: USERS, user: "alice", tenant: "acme" });
    expect(result.task.sessionPolicy).toBe(
      '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::tenants/acme/invoices/*"]}]}',
    );
    expect(w.verifier.calls).toEqual([
      { method: "verify", args: ["subject-alice", { kind: "user", use: "subject" }] },
    ]);
    expect(w.tasks.callsOf("create")[0]?.[1]).toEqual({
      rate: true,
      tokens: [
        { issuer: USERS, jti: "jti-alice-acme", expiresAt: TOKEN_EXP, role: "subject" },
        { issuer: CUSTOMER_AGENTS, jti: "jti-s1", expiresAt: TOKEN_EXP, role: "agent" },
      ],
    });
    expect(w.journal.labels().slice(0, 4)).toEqual([
      "templates.get",
      "verifier.verify",
      "tasks.create",
      "audit.vend.allowed",
    ]);
    expect(w.audit.events[0]).toEqual({
      event: "vend.allowed",
      requestId: "req-4",
      template: "tenant-reports",
      agent: { issuer: CUSTOMER_AGENTS, id: "support-agent" },
      user: "alice",
      tenant: "acme",
      taskId: TASK_1,
      policies: ["template:tenant-reports:agents"],
      policyVersion: "v1",
    });
    expect(w.broker.requests[0]?.tags).toEqual([
      { Key: "jitv:task", Value: TASK_1 },
      { Key: "jitv:agent", Value: "support-agent" },
      { Key: "jitv:template", Value: "tenant-reports" },
      { Key: "jitv:user", Value: "alice" },
      { Key: "jitv:tenant", Value: "acme" },
    ]);
    expect(w.agents.callsOf("recordAgentSeen")).toEqual([
      [{ issuer: CUSTOMER_AGENTS, id: "support-agent", zone: "customer" }, TUESDAY_10, { tenant: "acme" }],
    ]);
  });

  it("still vends when the agent registry fails (it feeds the inventory, never a decision)", async () => {
    const w = world();
    w.agents.fail(new UpstreamUnavailableError("registry down"));

    const result = await vendReports(w);

    expect(result.status).toBe(201);
    expect(w.agents.calls).toHaveLength(1);
    expect(w.broker.calls).toHaveLength(1);
  });
});

describe("TaskService.vend: failures after the record exists", () => {
  it("marks the task failed and drops the credential minted meanwhile when the lifecycle cannot start", async () => {
    const w = world();
    w.lifecycle.fail(new Error("StartExecution throttled"));

    await expectRefusal(vendReports(w), UpstreamUnavailableError, "could not schedule the task's lifecycle");

    expect(w.tasks.callsOf("markFailed")).toEqual([[TASK_1, "could not schedule the task's lifecycle"]]);
    expect(w.tasks.peek(TASK_1)).toMatchObject({
      status: "failed",
      reason: "could not schedule the task's lifecycle",
      issuedCount: 0,
    });
    // STS ran beside the failed start; its credential was never recorded, audited or returned.
    expect(w.broker.issued).toHaveLength(1);
    expect(w.tasks.callsOf("recordIssue")).toEqual([]);
    expect(w.audit.events).toEqual([
      expect.objectContaining({ event: "vend.allowed", taskId: TASK_1 }),
      {
        event: "task.failed",
        requestId: "req-1",
        template: "reports-read",
        agent: { issuer: AGENTS, id: "agent-a" },
        taskId: TASK_1,
        reason: "could not schedule the task's lifecycle",
      },
    ]);
  });

  it.each([
    { first: "STS succeeds, then the lifecycle start fails", held: "lifecycle" },
    { first: "the lifecycle start fails, then STS succeeds", held: "broker" },
  ] as const)("returns nothing and fails the task when $first", async ({ held }) => {
    const w = world();
    w.lifecycle.fail(new Error("StartExecution throttled"));
    const release = held === "lifecycle" ? w.lifecycle.hold("start") : w.broker.hold("assumeRole");

    const vend = rejectionOf(vendReports(w));
    await settle();
    // The other call is done, and the vend still waits for the held one; a failed start fails
    // the task at once.
    if (held === "lifecycle") {
      expect(w.broker.issued).toHaveLength(1);
      expect(w.tasks.callsOf("markFailed")).toEqual([]);
    } else {
      expect(w.lifecycle.calls).toHaveLength(1);
      expect(w.tasks.callsOf("markFailed")).toHaveLength(1);
    }
    release();
    const error = await vend;

    expect(error).toBeInstanceOf(UpstreamUnavailableError);
    expect(error.message).toBe("could not schedule the task's lifecycle");
    expect(w.broker.issued).toHaveLength(1);
    expect(w.lifecycle.executions.size).toBe(0);
    expect(w.tasks.peek(TASK_1)).toMatchObject({ status: "failed", issuedCount: 0 });
    expect(w.tasks.callsOf("recordIssue")).toEqual([]);
    expect(w.audit.names()).toEqual(["vend.allowed", "task.failed"]);
  });

  it.each([
    { first: "the lifecycle starts, then STS fails", held: "broker" },
    { first: "STS fails, then the lifecycle starts", held: "lifecycle" },
  ] as const)("returns nothing and fails the task when $first", async ({ held }) => {
    const w = world();
    w.broker.fail(new UpstreamUnavailableError("STS is unavailable"));
    const release = held === "lifecycle" ? w.lifecycle.hold("start") : w.broker.hold("assumeRole");

    const vend = rejectionOf(vendReports(w));
    await settle();
    expect(w.tasks.callsOf("markFailed")).toEqual([]);
    release();
    const error = await vend;

    expect(error.message).toBe("STS is unavailable");
    expect(w.lifecycle.executions.has(TASK_1)).toBe(true);
    expect(w.tasks.peek(TASK_1)).toMatchObject({
      status: "failed",
      reason: "STS is unavailable",
      issuedCount: 0,
    });
    expect(w.tasks.callsOf("markFailed")).toHaveLength(1);
    expect(w.audit.names()).toEqual(["vend.allowed", "task.failed"]);
  });

  it("answers only once both the lifecycle start and STS are done, and the issue is recorded", async () => {
    const w = world();
    const release = w.lifecycle.hold("start");

    let answered = false;
    const vend = vendReports(w).then((result) => {
      answered = true;
      return result;
    });
    await settle();
    expect(w.broker.issued).toHaveLength(1);
    expect(answered).toBe(false);
    expect(w.tasks.callsOf("recordIssue")).toEqual([]);
    release();

    expect((await vend).credentials?.AccessKeyId).toBe(w.broker.issued[0]?.AccessKeyId);
    expect(w.journal.labels().slice(-4)).toEqual([
      "broker.assumeRole",
      "lifecycle.start",
      "tasks.recordIssue",
      "audit.credentials.issued",
    ]);
  });

  it("marks the task failed and returns no credentials when the broker refuses", async () => {
    const w = world();
    const stsDown = new UpstreamUnavailableError("STS is unavailable");
    w.broker.fail(stsDown);

    const error = await rejectionOf(vendReports(w));

    expect(error).toBe(stsDown);
    expect(w.lifecycle.executions.has(TASK_1)).toBe(true);
    expect(w.tasks.peek(TASK_1)).toMatchObject({
      status: "failed",
      reason: "STS is unavailable",
      issuedCount: 0,
    });
    expect(w.tasks.callsOf("recordIssue")).toEqual([]);
    expect(w.audit.names()).toEqual(["vend.allowed", "task.failed"]);
    expect(w.audit.events[1]).toMatchObject({ taskId: TASK_1, reason: "STS is unavailable" });
  });

  it("reports a non-jitv broker error as upstream_unavailable without its text", async () => {
    const w = world();
    w.broker.fail(new Error("socket hang up at 10.0.0.7"));

    await expectRefusal(vendReports(w), UpstreamUnavailableError, "could not issue credentials");

    expect(w.tasks.peek(TASK_1)).toMatchObject({ status: "failed", reason: "could not issue credentials" });
  });

  it("returns nothing and fails the task when the issue cannot be recorded", async () => {
    const w = world();
    w.tasks.fail(new UpstreamUnavailableError("task store unavailable"), "recordIssue");

    await expectRefusal(vendReports(w), UpstreamUnavailableError, "task store unavailable");

    expect(w.broker.calls).toHaveLength(1);
    expect(w.tasks.peek(TASK_1)?.status).toBe("failed");
    expect(w.audit.names()).toEqual(["vend.allowed", "task.failed"]);
  });

  it("takes an active slot per task, refuses 429 when all are taken, and a failed task frees its slot", async () => {
    const w = world();
    const input: VendInput = { template: "limited" };
    await w.service.vend(agentA("jti-a1"), input);
    expect(w.tasks.activeSlots("limited", { issuer: AGENTS, id: "agent-a" })).toBe(1);

    await expectRefusal(
      w.service.vend(agentA("jti-a2"), input),
      RateLimitedError,
      "too many active tasks for this template",
    );
    expect(w.tasks.all().map((t) => t.taskId)).toEqual([TASK_1]);
    expect(w.broker.calls).toHaveLength(1);

    w.lifecycle.fail(new Error("throttled"));
    await w.tasks.markFailed(TASK_1, "test: end the first task");
    expect(w.tasks.activeSlots("limited", { issuer: AGENTS, id: "agent-a" })).toBe(0);
    await expectRefusal(
      w.service.vend(agentA("jti-a3"), input),
      UpstreamUnavailableError,
      "could not schedule the task's lifecycle",
    );
    expect(w.tasks.activeSlots("limited", { issuer: AGENTS, id: "agent-a" })).toBe(0);
  });
});

describe("TaskService.vend: approval-required templates", () => {
  it("answers 202 with a pending task, schedules it, tells approvers and issues nothing", async () => {
    const w = world();

    const result = await w.service.vend(
      agentA("jti-a1"),
      { template: "deploy", purpose: "release" },
      {
        requestId: "req-5",
      },
    );

    expect(result).toEqual({
      status: 202,
      task: expect.objectContaining({
        taskId: TASK_1,
        status: "pending_approval",
        createdAt: "2026-03-03T10:00:00.000Z",
        expiresAt: "2026-03-03T12:00:00.000Z",
        ttlSeconds: 900,
        issuedCount: 0,
      }),
    });
    expect(w.broker.calls).toEqual([]);
    expect(w.tasks.callsOf("recordIssue")).toEqual([]);
    expect(w.notifier.notified).toEqual([{ task: result.task, quorum: 2 }]);
    expect(w.lifecycle.executions.get(TASK_1)).toEqual({
      taskId: TASK_1,
      timeoutSeconds: 7200,
      approvalRequired: true,
      approvalTimeoutSeconds: 7200,
    });
    expect(w.audit.events).toEqual([
      expect.objectContaining({ event: "vend.allowed", taskId: TASK_1, purpose: "release" }),
      {
        event: "task.pending_approval",
        requestId: "req-5",
        template: "deploy",
        agent: { issuer: AGENTS, id: "agent-a" },
        taskId: TASK_1,
        quorum: 2,
      },
    ]);
    expect(w.journal.labels().slice(-3)).toEqual([
      "lifecycle.start",
      "audit.task.pending_approval",
      "notifier.pendingApproval",
    ]);
  });

  it("still answers 202 when the notification fails", async () => {
    const w = world();
    w.notifier.fail(new Error("EventBridge down"));

    const result = await w.service.vend(agentA("jti-a1"), { template: "deploy" });

    expect(result.status).toBe(202);
    expect(w.notifier.calls).toHaveLength(1);
    expect(w.notifier.notified).toEqual([]);
    expect(w.tasks.peek(TASK_1)?.status).toBe("pending_approval");
  });
});

describe("TaskService.vend: Idempotency-Key", () => {
  it("drops the replay's credential and leaves the task as it is when its lifecycle cannot be made sure of", async () => {
    const w = world();
    await vendReports(w, "jti-a1", { idempotencyKey: "key-1" });
    w.lifecycle.fail(new Error("StartExecution throttled"));

    await expectRefusal(
      vendReports(w, "jti-a2", { idempotencyKey: "key-1" }),
      UpstreamUnavailableError,
      "could not schedule the task's lifecycle",
    );

    // Minted beside the start, never recorded or returned; the first request's task stays active.
    expect(w.broker.issued).toHaveLength(2);
    expect(w.tasks.callsOf("recordIssue")).toHaveLength(1);
    expect(w.tasks.peek(TASK_1)).toMatchObject({ status: "active", issuedCount: 1 });
    expect(w.audit.names().filter((name) => name === "credentials.issued")).toHaveLength(1);
  });

  it("answers a repeated request with the same task and fresh credentials", async () => {
    const w = world();
    const first = await vendReports(w, "jti-a1", { idempotencyKey: "key-1" });
    w.clock.advance(60);

    const second = await vendReports(w, "jti-a2", { idempotencyKey: "key-1" });

    expect(second.status).toBe(201);
    // The task as stored when the replay read it: the first issue is counted.
    expect(second.task).toEqual({
      ...first.task,
      issuedCount: 1,
      lastCredentialExpiry: "2026-03-03T10:30:00.000Z",
    });
    expect(second.credentials?.AccessKeyId).toBe("ASIAFAKE000000000002");
    expect(second.credentials?.Expiration).toBe("2026-03-03T10:30:00.000Z");
    expect(w.tasks.all().map((t) => t.taskId)).toEqual([TASK_1]);
    expect(w.tasks.peek(TASK_1)?.issuedCount).toBe(2);
    expect(w.lifecycle.callsOf("start").map(([task]) => (task as Task).taskId)).toEqual([TASK_1, TASK_1]);
    expect(w.broker.requests.map((r) => [r.roleSessionName, r.durationSeconds])).toEqual([
      [TASK_1, 1800],
      [TASK_1, 1740],
    ]);
    expect(w.audit.names()).toEqual([
      "vend.allowed",
      "credentials.issued",
      "vend.allowed",
      "credentials.issued",
    ]);
    expect(w.audit.events.filter((e) => e.event === "credentials.issued").map((e) => e.taskId)).toEqual([
      TASK_1,
      TASK_1,
    ]);
  });

  it("answers a repeated request for a pending task 202 with that task, issuing nothing", async () => {
    const w = world();
    const first = await w.service.vend(agentA("jti-a1"), { template: "deploy" }, { idempotencyKey: "k" });

    const second = await w.service.vend(agentA("jti-a2"), { template: "deploy" }, { idempotencyKey: "k" });

    expect(second).toEqual({ status: 202, task: first.task });
    expect(w.broker.calls).toEqual([]);
    expect(w.notifier.notified).toHaveLength(1);
  });

  it("refuses the same key with other parameters 409", async () => {
    const w = world();
    await vendReports(w, "jti-a1", { idempotencyKey: "key-1" });

    await expectRefusal(
      w.service.vend(
        agentA("jti-a2"),
        { ...reportsInput, parameters: { prefix: "q4" } },
        { idempotencyKey: "key-1" },
      ),
      ConflictError,
      "Idempotency-Key was already used for a different request (template, parameters, user or tenant)",
    );

    expect(w.tasks.all().map((t) => t.taskId)).toEqual([TASK_1]);
    expect(w.broker.calls).toHaveLength(1);
    expect(w.lifecycle.calls).toHaveLength(1);
  });

  it("refuses the same key for another tenant 409", async () => {
    const w = world();
    await w.service.vend(supportAgent("jti-s1"), customerInput, { idempotencyKey: "key-1" });

    await expectRefusal(
      w.service.vend(
        supportAgent("jti-s2"),
        { ...customerInput, subjectToken: "subject-alice-globex" },
        { idempotencyKey: "key-1" },
      ),
      ConflictError,
      "Idempotency-Key was already used for a different request (template, parameters, user or tenant)",
    );

    expect(w.tasks.all().map((t) => t.onBehalfOf?.tenant)).toEqual(["acme"]);
    expect(w.broker.calls).toHaveLength(1);
  });

  it("refuses a key whose task has failed 409", async () => {
    const w = world();
    w.broker.fail(new UpstreamUnavailableError("STS is unavailable"));
    await rejectionOf(vendReports(w, "jti-a1", { idempotencyKey: "key-1" }));

    await expectRefusal(
      vendReports(w, "jti-a2", { idempotencyKey: "key-1" }),
      ConflictError,
      "the task for this Idempotency-Key is failed",
    );
    expect(w.broker.calls).toHaveLength(1);
  });

  it("creates a new task once the key's task has expired", async () => {
    const w = world();
    await vendReports(w, "jti-a1", { idempotencyKey: "key-1" });
    w.clock.advance(1801);

    const again = await vendReports(w, "jti-a2", { idempotencyKey: "key-1" });

    expect(again.task.taskId).toBe(TASK_2);
    expect(w.tasks.all().map((t) => t.taskId)).toEqual([TASK_1, TASK_2]);
  });
});

describe("TaskService: per-agent rates", () => {
  it("draws vends from the vend bucket and refreshes from the refresh bucket", async () => {
    const w = world({ capacity: 1, refillPerSecond: 0.1 });
    const ref = { issuer: AGENTS, id: "agent-a" };
    await vendReports(w, "jti-a1");

    const refreshed = await w.service.refresh(agentA("jti-a1"), TASK_1);
    expect(refreshed.status).toBe(201);

    const refreshLimited = await expectRefusal(
      w.service.refresh(agentA("jti-a1"), TASK_1),
      RateLimitedError,
      "too many credential refreshes by this agent, slow down",
    );
    expect((refreshLimited as RateLimitedError).headers).toEqual({ "Retry-After": "10" });

    const vendLimited = await expectRefusal(
      vendReports(w, "jti-a2", { requestId: "req-6" }),
      RateLimitedError,
      "too many vends by this agent, slow down",
    );
    expect((vendLimited as RateLimitedError).headers).toEqual({ "Retry-After": "10" });

    // Refreshes ask the limiter; vends take their token in the task's create.
    expect(w.rateLimiter.callsOf("consume")).toEqual([
      [ref, "refresh"],
      [ref, "refresh"],
    ]);
    expect(w.tasks.callsOf("create")).toHaveLength(2);
    expect(w.rateLimiter.consumed).toEqual([
      { agent: ref, bucket: "vend" },
      { agent: ref, bucket: "refresh" },
    ]);
    // The limited vend's token was not consumed: the agent may retry with it.
    expect([...w.tasks.usedTokens.keys()]).toEqual([`${AGENTS}|jti-a1`]);
    expect(w.audit.events.at(-1)).toMatchObject({
      event: "vend.denied",
      requestId: "req-6",
      reason: "too many vends by this agent, slow down",
    });
    expect(w.broker.calls).toHaveLength(2);

    w.clock.advance(10);
    await expect(w.service.refresh(agentA("jti-a1"), TASK_1)).resolves.toMatchObject({ status: 201 });
  });
});

describe("TaskService.refresh", () => {
  it("issues fresh credentials capped at the task's deadline, recording the real expiry", async () => {
    const w = world();
    await vendReports(w);
    w.clock.advance(1200);

    const result = await w.service.refresh(agentA("jti-a1"), TASK_1, "req-7");

    expect(w.broker.requests[1]?.durationSeconds).toBe(900);
    expect(w.broker.issued[1]?.Expiration).toBe("2026-03-03T10:35:00.000Z");
    expect(result.credentials?.Expiration).toBe("2026-03-03T10:30:00.000Z");
    expect(w.tasks.callsOf("recordIssue")).toEqual([
      [TASK_1, "2026-03-03T10:30:00.000Z"],
      [TASK_1, "2026-03-03T10:35:00.000Z"],
    ]);
    expect(w.tasks.peek(TASK_1)).toMatchObject({
      issuedCount: 2,
      lastCredentialExpiry: "2026-03-03T10:35:00.000Z",
    });
  });

  it("answers another agent 404 without issuing or drawing on its rate", async () => {
    const w = world();
    await vendReports(w);

    await expectRefusal(w.service.refresh(agent("agent-b"), TASK_1), NotFoundError, "unknown task");

    expect(w.broker.calls).toHaveLength(1);
    expect(w.rateLimiter.consumed).toHaveLength(1);
  });

  it("answers 409 once the task has expired", async () => {
    const w = world();
    await vendReports(w);
    w.clock.advance(1800);

    await expectRefusal(w.service.refresh(agentA("jti-a1"), TASK_1), ConflictError, "the task is expired");
    expect(w.broker.calls).toHaveLength(1);
  });

  it("answers a stored Cedar forbid 403, audited access.denied, without issuing", async () => {
    const w = world({
      policies:
        '@id("refresh-freeze") @reason("refreshes are paused") forbid (principal, action == Jitv::Action::"Refresh", resource);',
    });
    await vendReports(w);

    await expectRefusal(
      w.service.refresh(agentA("jti-a1"), TASK_1, "req-8"),
      ForbiddenError,
      "forbidden by policy refresh-freeze (refreshes are paused)",
    );

    expect(w.broker.calls).toHaveLength(1);
    expect(w.audit.events.at(-1)).toEqual({
      event: "access.denied",
      requestId: "req-8",
      action: "Refresh",
      taskId: TASK_1,
      template: "reports-read",
      agent: { issuer: AGENTS, id: "agent-a" },
      caller: { issuer: AGENTS, id: "agent-a", kind: "agent" },
      reason: "forbidden by policy refresh-freeze (refreshes are paused)",
      policies: ["refresh-freeze"],
      policyVersion: "v1",
    });
  });
});

describe("TaskService.complete", () => {
  it("ends the owner's task and signals the lifecycle's task token", async () => {
    const w = world();
    await vendReports(w);
    await w.tasks.mark(TASK_1, { taskToken: "sfn-token-1" });
    w.clock.advance(300);

    const ended = await w.service.complete(agentA("jti-a1"), TASK_1, "req-10");

    expect(ended).toMatchObject({ taskId: TASK_1, status: "completed", endedAt: "2026-03-03T10:05:00.000Z" });
    expect(w.tasks.callsOf("transition")).toEqual([[TASK_1, ["active"], "completed"]]);
    expect(w.tokens.signals).toEqual([{ taskToken: "sfn-token-1", output: { outcome: "completed" } }]);
    expect(w.audit.events.at(-1)).toEqual({
      event: "task.completed",
      requestId: "req-10",
      taskId: TASK_1,
      template: "reports-read",
      agent: { issuer: AGENTS, id: "agent-a" },
    });
    expect(w.journal.labels().slice(-3)).toEqual([
      "tasks.transition",
      "audit.task.completed",
      "tokens.sendSuccess",
    ]);

    await expectRefusal(w.service.complete(agentA("jti-a1"), TASK_1), ConflictError, "the task is completed");
    await expectRefusal(w.service.refresh(agentA("jti-a1"), TASK_1), ConflictError, "the task is completed");
    expect(w.tokens.signals).toHaveLength(1);
  });

  it("answers another agent 404 and leaves the task active", async () => {
    const w = world();
    await vendReports(w);

    await expectRefusal(w.service.complete(agent("agent-b"), TASK_1), NotFoundError, "unknown task");

    expect(w.tasks.callsOf("transition")).toEqual([]);
    expect(w.tasks.peek(TASK_1)?.status).toBe("active");
  });

  it("sends no signal before the lifecycle registered its token, and survives a failed signal", async () => {
    const w = world();
    await vendReports(w, "jti-a1");
    await vendReports(w, "jti-a2");
    await w.tasks.mark(TASK_2, { taskToken: "sfn-token-2" });
    w.tokens.fail(new Error("SendTaskSuccess failed"));

    await expect(w.service.complete(agentA("jti-a1"), TASK_1)).resolves.toMatchObject({
      status: "completed",
    });
    expect(w.tokens.calls).toEqual([]);

    await expect(w.service.complete(agentA("jti-a2"), TASK_2, "req-11")).resolves.toMatchObject({
      status: "completed",
    });
    expect(w.tokens.calls).toHaveLength(1);
    expect(w.audit.events.at(-1)).toEqual({
      event: "lifecycle.signal_failed",
      requestId: "req-11",
      taskId: TASK_2,
    });
  });
});

describe("TaskService.revoke", () => {
  it("refuses non-admins 403 before reading the task", async () => {
    const w = world();
    await vendReports(w);
    const getsBefore = w.tasks.callsOf("get").length;

    await expectRefusal(
      w.service.revoke(agentA("jti-a1"), TASK_1, "x"),
      ForbiddenError,
      "only admins may revoke tasks",
    );
    await expectRefusal(
      w.service.revoke(alice(), TASK_1, "x"),
      ForbiddenError,
      "only admins may revoke tasks",
    );

    expect(w.tasks.callsOf("get")).toHaveLength(getsBefore);
    expect(w.tasks.peek(TASK_1)?.status).toBe("active");
  });

  it("answers a customer-zone admin of another tenant 404", async () => {
    const w = world();
    await w.service.vend(supportAgent("jti-s1"), customerInput);

    await expectRefusal(w.service.revoke(tenantAdmin("globex"), TASK_1, "x"), NotFoundError, "unknown task");

    expect(w.tasks.callsOf("transition")).toEqual([]);
    expect(w.tasks.peek(TASK_1)?.status).toBe("active");
  });

  it("answers a customer-zone admin 404 for a workforce task", async () => {
    const w = world();
    await vendReports(w);

    await expectRefusal(w.service.revoke(tenantAdmin("acme"), TASK_1, "x"), NotFoundError, "unknown task");
    expect(w.tasks.peek(TASK_1)?.status).toBe("active");
  });

  it("lets a customer-zone admin revoke its own tenant's task", async () => {
    const w = world();
    await w.service.vend(supportAgent("jti-s1"), customerInput);

    const revoked = await w.service.revoke(tenantAdmin("acme"), TASK_1, "offboarding");

    expect(revoked).toMatchObject({ status: "revoked", reason: "offboarding" });
  });

  it.each([
    ["a workforce task", () => agentA("jti-a1"), reportsInput],
    ["a customer-zone task", () => supportAgent("jti-s1"), customerInput],
  ] as const)("lets a workforce admin revoke %s, signalling the lifecycle", async (_, who, input) => {
    const w = world();
    await w.service.vend(who(), input);
    await w.tasks.mark(TASK_1, { taskToken: "sfn-token-1" });
    w.clock.advance(60);

    const revoked = await w.service.revoke(workforceAdmin, TASK_1, "suspicious activity", "req-12");

    expect(revoked).toMatchObject({
      taskId: TASK_1,
      status: "revoked",
      reason: "suspicious activity",
      endedAt: "2026-03-03T10:01:00.000Z",
    });
    expect(w.tasks.callsOf("transition")).toEqual([
      [TASK_1, ["active", "pending_approval"], "revoked", "suspicious activity"],
    ]);
    expect(w.tokens.signals).toEqual([{ taskToken: "sfn-token-1", output: { outcome: "revoked" } }]);
    expect(w.audit.events.at(-1)).toEqual({
      event: "task.revoked",
      requestId: "req-12",
      taskId: TASK_1,
      template: input.template,
      agent: { issuer: who().issuer, id: who().id },
      ...(input === customerInput ? { user: "alice", tenant: "acme" } : {}),
      reason: "suspicious activity",
      revokedBy: "root",
    });
  });

  it("revokes a task still pending approval", async () => {
    const w = world();
    await w.service.vend(agentA("jti-a1"), { template: "deploy" });

    await expect(w.service.revoke(workforceAdmin, TASK_1, "not needed")).resolves.toMatchObject({
      status: "revoked",
    });
  });

  it("answers 409 for a task that already ended", async () => {
    const w = world();
    await vendReports(w);
    await w.service.complete(agentA("jti-a1"), TASK_1);

    await expectRefusal(
      w.service.revoke(workforceAdmin, TASK_1, "late"),
      ConflictError,
      "the task is completed",
    );
  });
});

describe("TaskService: a fake's `fail` hook is used once", () => {
  it("fails only the next call of the named method", async () => {
    const w = world();
    w.tasks.fail(new UpstreamUnavailableError("task store unavailable"), "create");

    await expectRefusal(vendReports(w, "jti-a1"), UpstreamUnavailableError, "task store unavailable");
    expect(w.tasks.all()).toEqual([]);

    await expect(vendReports(w, "jti-a2")).resolves.toMatchObject({ status: 201, task: { taskId: TASK_2 } });
  });
});
