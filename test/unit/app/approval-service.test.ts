import { describe, expect, it } from "vitest";
import { AccessControl } from "../../../lib/app/access.js";
import { ApprovalService } from "../../../lib/app/approval-service.js";
import { CedarAuthorizer } from "../../../lib/authz/cedar-authorizer.js";
import { StaffRoles } from "../../../lib/authz/roles.js";
import { ConflictError, ForbiddenError, NotFoundError } from "../../../lib/domain/errors.js";
import type { VerifiedIdentity } from "../../../lib/domain/identity.js";
import type { Task } from "../../../lib/domain/task.js";
import {
  CallJournal,
  FakeClock,
  JournalAuditLog,
  MemoryApprovalStore,
  MemoryTaskRepository,
  MemoryTaskTokens,
  MemoryTemplateStore,
} from "../../support/fakes.js";
import {
  AGENTS,
  agent,
  CUSTOMER_AGENTS,
  customerTemplate,
  FakePolicyStore,
  TUESDAY_10,
  task,
  template,
  USERS,
  user,
} from "../authz/fixtures.js";

const STAFF = "https://staff.example";
const WORKFORCE_TASK = `tsk_${"1".padStart(26, "0")}`;
const CUSTOMER_TASK = `tsk_${"2".padStart(26, "0")}`;
const at = (seconds: number) => new Date(TUESDAY_10.getTime() + seconds * 1000).toISOString();

const deploy = template("deploy", {
  parameters: {},
  approval: { required: true, quorum: 2, timeoutSeconds: 3600 },
});
const tenantDeploy = customerTemplate("tenant-deploy", {
  parameters: {},
  approval: { required: true, quorum: 1, timeoutSeconds: 3600 },
});

const staff = (id: string, roles: string[]): VerifiedIdentity =>
  user(id, undefined, { profile: "staff", issuer: STAFF, zone: "workforce", claims: { roles } });
const tenantStaff = (id: string, tenant: string, roles: string[]) => user(id, tenant, { claims: { roles } });
const ann = staff("ann", ["jitv-approver"]);
const ben = staff("ben", ["jitv-approver"]);
const adminOnly = staff("root", ["jitv-admin"]);
const adminApprover = staff("chief", ["jitv-admin", "jitv-approver"]);
const roles = new StaffRoles(
  [
    { issuer: STAFF, claim: "roles", values: ["jitv-admin"] },
    { issuer: USERS, claim: "roles", values: ["tenant-admin"] },
  ],
  [
    { issuer: STAFF, claim: "roles", values: ["jitv-approver"] },
    { issuer: USERS, claim: "roles", values: ["tenant-approver"] },
    // Lets an agent token hold the approver role, to show an agent never approves its own task.
    { issuer: AGENTS, claim: "roles", values: ["jitv-approver"] },
  ],
);

const pendingWorkforce: Task = task({
  taskId: WORKFORCE_TASK,
  status: "pending_approval",
  template: "deploy",
  parameters: {},
  createdAt: at(0),
  expiresAt: at(3600),
  ttlSeconds: 1800,
  issuedCount: 0,
  idempotencyKey: "key-1",
  approvalToken: "approval-token-1",
});
const pendingCustomer: Task = task({
  taskId: CUSTOMER_TASK,
  status: "pending_approval",
  template: "tenant-deploy",
  zone: "customer",
  agent: { issuer: CUSTOMER_AGENTS, id: "support-agent" },
  onBehalfOf: { issuer: USERS, user: "alice", tenant: "acme" },
  parameters: {},
  createdAt: at(0),
  expiresAt: at(3600),
  ttlSeconds: 900,
  issuedCount: 0,
  approvalToken: "approval-token-2",
});

function world(policies = "") {
  const clock = new FakeClock(TUESDAY_10);
  const journal = new CallJournal();
  const common = { journal, now: clock.now };
  const tasks = new MemoryTaskRepository(common).seed(pendingWorkforce, pendingCustomer);
  const approvals = new MemoryApprovalStore(tasks, common);
  const templates = new MemoryTemplateStore([deploy, tenantDeploy], common);
  const tokens = new MemoryTaskTokens(common);
  const audit = new JournalAuditLog(journal);
  const authorizer = new CedarAuthorizer({ store: new FakePolicyStore(policies), now: clock.now });
  const access = new AccessControl({ authorizer, roles, audit });
  const service = new ApprovalService({
    tasks,
    templates,
    approvals,
    tokens,
    roles,
    access,
    audit,
    now: clock.now,
  });
  return { clock, journal, tasks, approvals, templates, tokens, audit, service };
}

async function expectRefusal(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => Error,
  message: string,
): Promise<void> {
  let error: unknown;
  try {
    await promise;
  } catch (caught) {
    error = caught;
  }
  expect(error).toBeInstanceOf(type);
  expect((error as Error).message).toBe(message);
}

describe("ApprovalService: who may decide", () => {
  it.each([
    ["an admin who is not an approver", adminOnly],
    ["the requesting agent", agent("agent-a")],
    ["a user without roles", user("mallory", "acme")],
  ])("refuses %s 403 without reading the task", async (_, caller) => {
    const w = world();

    await expectRefusal(
      w.service.approve(caller, WORKFORCE_TASK),
      ForbiddenError,
      "only approvers may decide on tasks",
    );
    await expectRefusal(
      w.service.deny(caller, WORKFORCE_TASK, "no"),
      ForbiddenError,
      "only approvers may decide on tasks",
    );

    expect(w.journal.labels()).toEqual([]);
    expect(w.tasks.peek(WORKFORCE_TASK)).toEqual(pendingWorkforce);
  });

  it("answers an approver of another tenant 404, as if the task did not exist", async () => {
    const w = world();
    const globexApprover = tenantStaff("gina", "globex", ["tenant-approver"]);

    await expectRefusal(w.service.approve(globexApprover, CUSTOMER_TASK), NotFoundError, "unknown task");
    await expectRefusal(w.service.deny(globexApprover, CUSTOMER_TASK, "no"), NotFoundError, "unknown task");

    expect(w.approvals.calls).toEqual([]);
    expect(w.tasks.callsOf("transition")).toEqual([]);
    expect(w.tasks.peek(CUSTOMER_TASK)).toEqual(pendingCustomer);
  });

  it("answers a workforce approver 404 for a customer-zone task, and 403 when it administers it", async () => {
    const w = world();

    await expectRefusal(w.service.approve(ann, CUSTOMER_TASK), NotFoundError, "unknown task");
    await expectRefusal(
      w.service.approve(adminApprover, CUSTOMER_TASK),
      ForbiddenError,
      "approvers decide only on tasks of their own zone (and, customer zone, tenant)",
    );

    expect(w.approvals.calls).toEqual([]);
  });

  it("answers 404 for an id that is not a task id, without a lookup", async () => {
    const w = world();

    await expectRefusal(w.service.approve(ann, "tsk_nope"), NotFoundError, "unknown task");

    expect(w.tasks.calls).toEqual([]);
  });

  it("refuses the user a task acts for 403, even as its tenant's approver", async () => {
    const w = world();
    const aliceApprover = tenantStaff("alice", "acme", ["tenant-approver"]);

    await expectRefusal(
      w.service.approve(aliceApprover, CUSTOMER_TASK),
      ForbiddenError,
      "the agent and the user it acts for cannot approve their own task",
    );
    await expectRefusal(
      w.service.deny(aliceApprover, CUSTOMER_TASK, "no"),
      ForbiddenError,
      "the agent and the user it acts for cannot approve their own task",
    );

    expect(w.approvals.calls).toEqual([]);
    expect(w.tasks.peek(CUSTOMER_TASK)?.status).toBe("pending_approval");
  });

  it("refuses the requesting agent 403 even when its token carries the approver role", async () => {
    const w = world();
    const selfApprover = agent("agent-a", { claims: { roles: ["jitv-approver"] } });

    await expectRefusal(
      w.service.approve(selfApprover, WORKFORCE_TASK),
      ForbiddenError,
      "the agent and the user it acts for cannot approve their own task",
    );

    expect(w.approvals.calls).toEqual([]);
  });

  it("answers a stored Cedar forbid 403, audited access.denied, recording no approval", async () => {
    const w = world(
      '@id("change-freeze") @reason("changes are frozen") forbid (principal, action == Jitv::Action::"Approve", resource);',
    );

    await expectRefusal(
      w.service.approve(ann, WORKFORCE_TASK, "req-1"),
      ForbiddenError,
      "forbidden by policy change-freeze (changes are frozen)",
    );

    expect(w.approvals.calls).toEqual([]);
    expect(w.audit.events).toEqual([
      {
        event: "access.denied",
        requestId: "req-1",
        action: "Approve",
        taskId: WORKFORCE_TASK,
        template: "deploy",
        agent: { issuer: AGENTS, id: "agent-a" },
        caller: { issuer: STAFF, id: "ann", kind: "user" },
        reason: "forbidden by policy change-freeze (changes are frozen)",
        policies: ["change-freeze"],
        policyVersion: "v1",
      },
    ]);
  });
});

describe("ApprovalService.approve", () => {
  it("activates the task once a quorum of distinct approvers agreed, its life starting then", async () => {
    const w = world();
    w.clock.advance(600);

    const first = await w.service.approve(ann, WORKFORCE_TASK, "req-2");

    expect(first).toEqual({ taskId: WORKFORCE_TASK, status: "pending_approval", approvals: 1 });
    expect(w.approvals.callsOf("recordApproval")).toEqual([[WORKFORCE_TASK, `${STAFF}|ann`]]);
    expect(w.approvals.callsOf("activate")).toEqual([]);
    expect(w.tokens.calls).toEqual([]);

    w.clock.advance(600);
    const second = await w.service.approve(ben, WORKFORCE_TASK, "req-3");

    expect(second).toEqual({ taskId: WORKFORCE_TASK, status: "active", approvals: 2 });
    expect(w.approvals.callsOf("activate")).toEqual([
      [{ ...pendingWorkforce, approvals: [`${STAFF}|ann`] }, "2026-03-03T10:50:00.000Z"],
    ]);
    expect(w.tasks.peek(WORKFORCE_TASK)).toEqual({
      ...pendingWorkforce,
      status: "active",
      expiresAt: "2026-03-03T10:50:00.000Z",
      approvals: [`${STAFF}|ann`, `${STAFF}|ben`],
    });
    expect(w.tokens.signals).toEqual([
      { taskToken: "approval-token-1", output: { decision: "approved", timeoutSeconds: 1800 } },
    ]);
    const fields = {
      taskId: WORKFORCE_TASK,
      template: "deploy",
      agent: { issuer: AGENTS, id: "agent-a" },
    };
    expect(w.audit.events).toEqual([
      { event: "approval.recorded", requestId: "req-2", ...fields, approver: "ann", approvals: 1, quorum: 2 },
      { event: "approval.recorded", requestId: "req-3", ...fields, approver: "ben", approvals: 2, quorum: 2 },
      { event: "task.approved", requestId: "req-3", ...fields, approvals: 2 },
    ]);
    expect(w.journal.labels().slice(-5)).toEqual([
      "audit.approval.recorded",
      "approvals.activate",
      "audit.task.approved",
      "tokens.sendSuccess",
      "tasks.get",
    ]);
  });

  it("refuses the same approver twice 409 and counts it once", async () => {
    const w = world();
    await w.service.approve(ann, WORKFORCE_TASK);

    await expectRefusal(
      w.service.approve(ann, WORKFORCE_TASK),
      ConflictError,
      "already approved by this approver, or no longer pending",
    );

    expect(w.approvals.callsOf("recordApproval")).toHaveLength(2);
    expect(w.approvals.callsOf("activate")).toEqual([]);
    expect(w.tasks.peek(WORKFORCE_TASK)).toMatchObject({
      status: "pending_approval",
      approvals: [`${STAFF}|ann`],
    });
    expect(w.audit.names()).toEqual(["approval.recorded"]);
  });

  it("lets a customer-zone approver of the task's tenant activate it (quorum 1)", async () => {
    const w = world();

    const result = await w.service.approve(tenantStaff("carol", "acme", ["tenant-approver"]), CUSTOMER_TASK);

    expect(result).toEqual({ taskId: CUSTOMER_TASK, status: "active", approvals: 1 });
    expect(w.approvals.callsOf("activate")).toEqual([[pendingCustomer, "2026-03-03T10:15:00.000Z"]]);
    expect(w.tasks.peek(CUSTOMER_TASK)).toMatchObject({
      status: "active",
      expiresAt: "2026-03-03T10:15:00.000Z",
      approvals: [`${USERS}|carol`],
    });
    expect(w.tokens.signals).toEqual([
      { taskToken: "approval-token-2", output: { decision: "approved", timeoutSeconds: 900 } },
    ]);
  });

  it("answers 409 once the task is no longer pending, or its approval deadline passed", async () => {
    const w = world();
    w.tasks.seed({ ...pendingWorkforce, taskId: `tsk_${"3".padStart(26, "0")}`, status: "active" });

    await expectRefusal(
      w.service.approve(ann, `tsk_${"3".padStart(26, "0")}`),
      ConflictError,
      "the task is active",
    );

    w.clock.advance(3600);
    await expectRefusal(w.service.approve(ann, WORKFORCE_TASK), ConflictError, "the task is denied");
    expect(w.approvals.calls).toEqual([]);
  });

  it("still answers once the approval signal fails, auditing the failure", async () => {
    const w = world();
    w.tokens.fail(new Error("SendTaskSuccess failed"));

    const result = await w.service.approve(
      tenantStaff("carol", "acme", ["tenant-approver"]),
      CUSTOMER_TASK,
      "r",
    );

    expect(result.status).toBe("active");
    expect(w.audit.names()).toEqual(["approval.recorded", "task.approved", "lifecycle.signal_failed"]);
  });
});

describe("ApprovalService.deny", () => {
  it("denies the task with the reason and signals the approval token", async () => {
    const w = world();

    const result = await w.service.deny(ann, WORKFORCE_TASK, "not during the freeze", "req-4");

    expect(result).toEqual({ taskId: WORKFORCE_TASK, status: "denied", approvals: 0 });
    expect(w.tasks.callsOf("transition")).toEqual([
      [WORKFORCE_TASK, ["pending_approval"], "denied", "not during the freeze"],
    ]);
    expect(w.tasks.peek(WORKFORCE_TASK)).toEqual({
      ...pendingWorkforce,
      status: "denied",
      reason: "not during the freeze",
    });
    expect(w.tokens.signals).toEqual([{ taskToken: "approval-token-1", output: { decision: "denied" } }]);
    expect(w.audit.events).toEqual([
      {
        event: "task.denied",
        requestId: "req-4",
        taskId: WORKFORCE_TASK,
        template: "deploy",
        agent: { issuer: AGENTS, id: "agent-a" },
        approver: "ann",
        reason: "not during the freeze",
      },
    ]);
    await expectRefusal(w.service.approve(ben, WORKFORCE_TASK), ConflictError, "the task is denied");
  });

  it("gives a default reason and counts approvals already recorded", async () => {
    const w = world();
    await w.service.approve(ann, WORKFORCE_TASK);

    const result = await w.service.deny(ben, WORKFORCE_TASK, undefined);

    expect(result).toEqual({ taskId: WORKFORCE_TASK, status: "denied", approvals: 1 });
    expect(w.tasks.peek(WORKFORCE_TASK)?.reason).toBe("approval refused");
  });
});
