import { describe, expect, it } from "vitest";
import type { VendDecisionRequest } from "../../../lib/authz/authorizer.js";
import { CedarAuthorizer } from "../../../lib/authz/cedar-authorizer.js";
import { InternalError, UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import type { VerifiedIdentity } from "../../../lib/domain/identity.js";
import type { TaskTemplate } from "../../../lib/domain/template.js";
import {
  AGENTS,
  agent,
  customerAgent,
  customerTemplate,
  examplePolicy,
  FakePolicyStore,
  SUNDAY_03,
  TUESDAY_10,
  task,
  template,
  uncommentedExample,
  user,
} from "./fixtures.js";

function authorizer(text = "", options: { now?: () => Date; cacheMs?: number } = {}) {
  const store = new FakePolicyStore(text);
  return { store, authz: new CedarAuthorizer({ store, now: () => TUESDAY_10, ...options }) };
}

function vend(
  who: VerifiedIdentity,
  tpl: TaskTemplate,
  extra: Partial<VendDecisionRequest> = {},
): VendDecisionRequest {
  return { agent: who, template: tpl, ttlSeconds: 900, parameters: {}, ...extra };
}

const examples = ["customer-zone", "tenant-reports"].map(examplePolicy).join("\n");

describe("CedarAuthorizer: the compiled agents list", () => {
  it("allows an agent in the template's agents list, naming the compiled policy", async () => {
    const { authz } = authorizer();

    const decision = await authz.authorizeVend(vend(agent("agent-a"), template("reports-read")));

    expect(decision).toEqual({
      allowed: true,
      reason: "permitted by policy template:reports-read:agents",
      policies: ["template:reports-read:agents"],
      policyVersion: "v1",
    });
  });

  it("denies an agent that is not listed with 'no policy permits'", async () => {
    const { authz } = authorizer();

    const decision = await authz.authorizeVend(vend(agent("agent-z"), template("reports-read")));

    expect(decision.allowed).toBe(false);
    expect(decision.reason).toBe(
      "no policy permits this request (the agent is not in the template's agents list)",
    );
    expect(decision.policies).toEqual([]);
  });

  it("matches issuer and id exactly: same id from another issuer is denied", async () => {
    const { authz } = authorizer();

    const decision = await authz.authorizeVend(
      vend(agent("agent-a", { issuer: "https://agents.example/" }), template("reports-read")),
    );

    expect(decision.allowed).toBe(false);
  });

  it("escapes every value: an agent id with quotes, backslashes, newlines and emoji matches only itself", async () => {
    const nasty = 'a"b\\c\nd\u2028😀"]).contains(principal) || true || ["';
    const pipeIssuer = "https://odd.example/a|b";
    const tpl = template("odd", {
      agents: [
        { issuer: AGENTS, subjects: [nasty] },
        { issuer: pipeIssuer, subjects: ["c"] },
      ],
    });
    const { authz } = authorizer();

    expect((await authz.authorizeVend(vend(agent(nasty), tpl))).allowed).toBe(true);
    expect((await authz.authorizeVend(vend(agent("anyone"), tpl))).allowed).toBe(false);
    expect((await authz.authorizeVend(vend(agent(nasty.slice(0, -1)), tpl))).allowed).toBe(false);
    expect((await authz.authorizeVend(vend(agent("c", { issuer: pipeIssuer }), tpl))).allowed).toBe(true);
    // "https://odd.example/a" + "|" + "b|c" would collide without encoding the issuer's "|".
    const collider = agent("b|c", { issuer: "https://odd.example/a" });
    expect((await authz.authorizeVend(vend(collider, tpl))).allowed).toBe(false);
  });

  it("permits through a stored policy when the template lists no agents", async () => {
    const { authz } = authorizer(
      '@id("ci-may-read-logs") permit (principal, action == Jitv::Action::"Vend", resource == Jitv::Template::"logs") when { principal.groups.contains("ci") };',
    );
    const logs = template("logs", { agents: [] });

    expect(await authz.authorizeVend(vend(agent("x", { groups: ["ci"] }), logs))).toMatchObject({
      allowed: true,
      policies: ["ci-may-read-logs"],
    });
    expect(await authz.authorizeVend(vend(agent("x"), logs))).toMatchObject({
      allowed: false,
      reason: "no policy permits this request (the agent is not in the template's agents list)",
    });
  });
});

describe("CedarAuthorizer: forbid policies", () => {
  const secretPrefix = `@id("no-secret-prefix")
@reason("the prefix 'secret' is off limits")
forbid (principal, action == Jitv::Action::"Vend", resource)
when { context.parameters.hasTag("prefix") && context.parameters.getTag("prefix") like "secret*" };
@id("unrelated-forbid") forbid (principal, action == Jitv::Action::"Vend", resource) when { context.ttlSeconds > 40000 };`;

  it("denies a listed agent, naming the forbid's id and reason and nothing of other policies", async () => {
    const { authz } = authorizer(secretPrefix);

    const decision = await authz.authorizeVend(
      vend(agent("agent-a"), template("reports-read"), { parameters: { prefix: "secret-plans" } }),
    );

    expect(decision).toEqual({
      allowed: false,
      reason: "forbidden by policy no-secret-prefix (the prefix 'secret' is off limits)",
      policies: ["no-secret-prefix"],
      policyVersion: "v1",
    });
    expect(decision.reason).not.toContain("unrelated-forbid");
    expect(decision.reason).not.toContain("like");
  });

  it("reads parameters as tags: other values pass", async () => {
    const { authz } = authorizer(secretPrefix);

    const decision = await authz.authorizeVend(
      vend(agent("agent-a"), template("reports-read"), { parameters: { prefix: "q3" } }),
    );

    expect(decision.allowed).toBe(true);
  });

  it("names every determining forbid", async () => {
    const { authz } = authorizer(
      '@id("one") forbid (principal, action, resource);\n@id("two") @reason("no") forbid (principal, action, resource);',
    );

    const decision = await authz.authorizeVend(vend(agent("agent-a"), template("reports-read")));

    expect(decision.allowed).toBe(false);
    expect(decision.reason).toBe("forbidden by policies one, two (no)");
    expect([...decision.policies].sort()).toEqual(["one", "two"]);
  });

  it("fails closed when a forbid cannot be evaluated (Cedar alone would skip it)", async () => {
    const { authz } = authorizer(
      '@id("overflowing") forbid (principal, action, resource) when { context.ttlSeconds * 9223372036854775807 > 0 };',
    );

    const decision = await authz.authorizeVend(vend(agent("agent-a"), template("reports-read")));

    expect(decision).toMatchObject({
      allowed: false,
      reason: "denied: policy overflowing could not be evaluated",
      policies: ["overflowing"],
    });
  });

  it("forbids a zone crossing by the built-in baseline's zone-boundary policy", async () => {
    const { authz } = authorizer();
    // A template that (wrongly) lists a workforce agent in the customer zone.
    const tpl = customerTemplate("tenant-reports-read", {
      agents: [{ issuer: AGENTS, subjects: ["agent-a"] }],
    });

    const decision = await authz.authorizeVend(vend(agent("agent-a"), tpl));

    expect(decision).toMatchObject({
      allowed: false,
      reason: "forbidden by policy zone-boundary (a token from one trust zone has no power in the other)",
      policies: ["zone-boundary"],
    });
  });
});

describe("CedarAuthorizer: context conditions (example policies)", () => {
  const alice = user("alice", "acme");
  const reports = customerTemplate("tenant-reports-read");

  it("allows a delegated customer vend with a purpose and a short TTL", async () => {
    const { authz } = authorizer(examples);

    const decision = await authz.authorizeVend(
      vend(customerAgent("support-agent"), reports, {
        subject: alice,
        purpose: "ticket 42",
        ttlSeconds: 3600,
      }),
    );

    expect(decision).toMatchObject({ allowed: true, policies: ["template:tenant-reports-read:agents"] });
  });

  it("requires a purpose for every customer-zone vend", async () => {
    const { authz } = authorizer(examples);

    const decision = await authz.authorizeVend(
      vend(customerAgent("support-agent"), reports, { subject: alice }),
    );

    expect(decision).toMatchObject({
      allowed: false,
      reason: "forbidden by policy customer-vend-requires-purpose (a customer-zone vend needs a purpose)",
    });
  });

  it("forbids a TTL over 1800 s for tenant-reports-read without a purpose", async () => {
    const { authz } = authorizer(examplePolicy("tenant-reports"));
    const agentA = customerAgent("support-agent");

    const long = await authz.authorizeVend(vend(agentA, reports, { subject: alice, ttlSeconds: 1801 }));
    const short = await authz.authorizeVend(vend(agentA, reports, { subject: alice, ttlSeconds: 1800 }));
    const explained = await authz.authorizeVend(
      vend(agentA, reports, { subject: alice, ttlSeconds: 3600, purpose: "quarterly audit" }),
    );

    expect(long).toMatchObject({ allowed: false, policies: ["tenant-reports-long-ttl-needs-purpose"] });
    expect(short.allowed).toBe(true);
    expect(explained.allowed).toBe(true);
  });

  it("forbids a customer-zone vend without a tenant", async () => {
    const { authz } = authorizer(examples);

    const decision = await authz.authorizeVend(
      vend(customerAgent("support-agent"), reports, { purpose: "ticket 42" }),
    );

    expect(decision).toMatchObject({ allowed: false, policies: ["customer-vend-requires-tenant"] });
  });

  it("applies the business-hours example with the injected clock", async () => {
    const hours = uncommentedExample(examplePolicy("business-hours"));
    const db = template("db-maintenance");
    let now = TUESDAY_10;
    const { authz } = authorizer(hours, { now: () => now });

    expect((await authz.authorizeVend(vend(agent("agent-a"), db))).allowed).toBe(true);
    now = SUNDAY_03;
    expect(await authz.authorizeVend(vend(agent("agent-a"), db))).toMatchObject({
      allowed: false,
      policies: ["db-maintenance-business-hours"],
    });
    now = new Date("2026-03-03T20:00:00.000Z");
    expect((await authz.authorizeVend(vend(agent("agent-a"), db))).allowed).toBe(false);
    now = new Date("2026-03-03T05:59:59.000Z");
    expect((await authz.authorizeVend(vend(agent("agent-a"), db))).allowed).toBe(false);
    now = new Date("2026-03-03T19:59:59.000Z");
    expect((await authz.authorizeVend(vend(agent("agent-a"), db))).allowed).toBe(true);
    // Other templates are not affected at night.
    now = SUNDAY_03;
    expect((await authz.authorizeVend(vend(agent("agent-a"), template("reports-read")))).allowed).toBe(true);
  });

  it("passes the source IP as an ipaddr and leaves out one that is not an address", async () => {
    const { authz } = authorizer(
      '@id("office-only") @reason("vends only from the office network") forbid (principal, action == Jitv::Action::"Vend", resource) unless { context has sourceIp && context.sourceIp.isInRange(ip("10.0.0.0/8")) };',
    );
    const request = (sourceIp?: string) =>
      vend(agent("agent-a"), template("reports-read"), sourceIp === undefined ? {} : { sourceIp });

    expect((await authz.authorizeVend(request("10.1.2.3"))).allowed).toBe(true);
    expect((await authz.authorizeVend(request("192.0.2.1"))).allowed).toBe(false);
    expect((await authz.authorizeVend(request("10.1.2.3/8"))).allowed).toBe(false);
    expect((await authz.authorizeVend(request())).allowed).toBe(false);
  });

  it("passes approval state", async () => {
    const { authz } = authorizer(
      '@id("needs-two") forbid (principal, action == Jitv::Action::"Vend", resource) when { resource.approvalRequired } unless { context.approved && context.approvals >= 2 };',
    );
    const gated = template("prod-write", { approval: { required: true, quorum: 2 } });

    expect((await authz.authorizeVend(vend(agent("agent-a"), gated))).allowed).toBe(false);
    expect(
      (await authz.authorizeVend(vend(agent("agent-a"), gated, { approved: true, approvals: 1 }))).allowed,
    ).toBe(false);
    expect(
      (await authz.authorizeVend(vend(agent("agent-a"), gated, { approved: true, approvals: 2 }))).allowed,
    ).toBe(true);
  });
});

describe("CedarAuthorizer.authorize: other actions", () => {
  it("lets the owner agent read, refresh and complete its task, and no other agent", async () => {
    const { authz } = authorizer();
    const owned = { kind: "task" as const, task: task() };

    for (const action of ["ReadTask", "Refresh", "Complete"] as const) {
      expect(await authz.authorize(action, { identity: agent("agent-a") }, owned)).toMatchObject({
        allowed: true,
        policies: ["owner-agent-task-actions"],
      });
      expect(await authz.authorize(action, { identity: agent("agent-b") }, owned)).toMatchObject({
        allowed: false,
        reason: "no policy permits this request",
      });
    }
  });

  it("keeps customer-zone admins in their own zone and tenant", async () => {
    const { authz } = authorizer();
    const admin = { identity: user("admin", "jitv"), roles: ["admin"] };

    expect(
      await authz.authorize("ListTasks", admin, { kind: "zone", zone: "customer", tenant: "jitv" }),
    ).toMatchObject({ allowed: true, policies: ["zone-admins"] });
    // A listing not scoped to its tenant, or scoped to another, is beyond it.
    for (const tenant of [undefined, "acme"]) {
      expect(
        await authz.authorize("ListTasks", admin, {
          kind: "zone",
          zone: "customer",
          ...(tenant ? { tenant } : {}),
        }),
      ).toMatchObject({ allowed: false, policies: ["customer-tenant-boundary"] });
    }
    const acmeTask = task({
      zone: "customer",
      onBehalfOf: { issuer: "https://users.example", user: "alice", tenant: "acme" },
    });
    expect(await authz.authorize("ReadTask", admin, { kind: "task", task: acmeTask })).toMatchObject({
      allowed: false,
      policies: ["customer-tenant-boundary"],
    });
    // Workforce tasks have no tenant: both boundaries refuse.
    expect(await authz.authorize("ListTasks", admin, { kind: "zone", zone: "workforce" })).toMatchObject({
      allowed: false,
      policies: ["zone-boundary", "customer-tenant-boundary"],
    });
    expect(await authz.authorize("Revoke", admin, { kind: "task", task: task() })).toMatchObject({
      allowed: false,
      policies: ["zone-boundary", "customer-tenant-boundary"],
    });
    expect(
      await authz.authorize(
        "ListAgents",
        { identity: user("alice", "acme") },
        { kind: "zone", zone: "customer", tenant: "acme" },
      ),
    ).toMatchObject({ allowed: false, reason: "no policy permits this request" });
  });

  it("lets workforce admins read, list and revoke in every zone, but approve nowhere else", async () => {
    const { authz } = authorizer();
    const root = user("root", undefined, { zone: "workforce" });
    const customerTask = task({
      zone: "customer",
      status: "pending_approval",
      onBehalfOf: { issuer: "https://users.example", user: "alice", tenant: "acme" },
    });
    for (const action of ["ReadTask", "Revoke"] as const) {
      expect(
        await authz.authorize(
          action,
          { identity: root, roles: ["admin"] },
          { kind: "task", task: customerTask },
        ),
      ).toMatchObject({ allowed: true, policies: ["zone-admins"] });
    }
    expect(
      await authz.authorize(
        "ListAgents",
        { identity: root, roles: ["admin"] },
        { kind: "zone", zone: "customer" },
      ),
    ).toMatchObject({ allowed: true });
    expect(
      await authz.authorize(
        "Approve",
        { identity: root, roles: ["admin", "approver"] },
        { kind: "task", task: customerTask },
      ),
    ).toMatchObject({ allowed: false, policies: ["zone-boundary"] });
    // A workforce identity that is no admin crosses nothing.
    expect(
      await authz.authorize(
        "ReadTask",
        { identity: root, roles: ["approver"] },
        { kind: "task", task: customerTask },
      ),
    ).toMatchObject({ allowed: false, policies: ["zone-boundary"] });
  });

  it("keeps the tenant boundary against a stored permit-all", async () => {
    const { authz } = authorizer('@id("permit-all") permit (principal, action, resource);');
    const acmeTask = task({
      zone: "customer",
      onBehalfOf: { issuer: "https://users.example", user: "alice", tenant: "acme" },
    });
    for (const action of ["ReadTask", "Revoke"] as const) {
      expect(
        await authz.authorize(
          action,
          { identity: user("eve", "globex"), roles: ["admin"] },
          { kind: "task", task: acmeTask },
        ),
      ).toMatchObject({ allowed: false, policies: ["customer-tenant-boundary"] });
    }
  });

  it("lets approvers approve a pending task, but not the user it acts for", async () => {
    const { authz } = authorizer();
    const pending = task({
      status: "pending_approval",
      zone: "customer",
      agent: { issuer: "https://customer-agents.example", id: "support-agent" },
      onBehalfOf: { issuer: "https://users.example", user: "alice", tenant: "acme" },
    });

    expect(
      await authz.authorize(
        "Approve",
        { identity: user("carol", "acme"), roles: ["approver"] },
        { kind: "task", task: pending },
      ),
    ).toMatchObject({ allowed: true, policies: ["zone-approvers"] });
    expect(
      await authz.authorize(
        "Approve",
        { identity: user("carol", "globex"), roles: ["approver"] },
        { kind: "task", task: pending },
      ),
    ).toMatchObject({ allowed: false, policies: ["customer-tenant-boundary"] });
    expect(
      await authz.authorize(
        "Approve",
        { identity: user("alice", "acme"), roles: ["approver"] },
        { kind: "task", task: pending },
      ),
    ).toMatchObject({ allowed: false, policies: ["no-self-approval"] });
    expect(
      await authz.authorize(
        "Approve",
        { identity: user("carol", "acme"), roles: ["approver"] },
        { kind: "task", task: { ...pending, status: "active" } },
      ),
    ).toMatchObject({ allowed: false, reason: "no policy permits this request" });
  });

  it("denies an action to a principal or resource kind it does not apply to", async () => {
    const { authz } = authorizer();

    expect(
      await authz.authorize("Approve", { identity: agent("agent-a") }, { kind: "task", task: task() }),
    ).toEqual({
      allowed: false,
      reason: "Approve does not apply to agent tokens on a task",
      policies: [],
    });
    expect(
      (
        await authz.authorize(
          "Vend",
          { identity: user("alice", "acme") },
          { kind: "template", template: template("x") },
        )
      ).allowed,
    ).toBe(false);
  });

  it("reads context defaults from the task: TTL, parameters, purpose, tenant", async () => {
    const { authz } = authorizer(
      `@id("owner") permit (principal is Jitv::Agent, action == Jitv::Action::"ReadTask", resource is Jitv::Task) when { resource.agent == principal };
@id("task-context") forbid (principal, action == Jitv::Action::"ReadTask", resource)
when { context.ttlSeconds == 1800 && context.parameters.hasTag("prefix") && context.parameters.getTag("prefix") == "q3" && context has purpose && context.purpose == "audit" && context has tenant && context.tenant == "acme" && context.delegated };`,
    );
    const delegated = task({
      purpose: "audit",
      onBehalfOf: { issuer: "https://users.example", user: "alice", tenant: "acme" },
    });

    expect(
      await authz.authorize("ReadTask", { identity: agent("agent-a") }, { kind: "task", task: delegated }),
    ).toMatchObject({
      allowed: false,
      policies: ["task-context"],
    });
    expect(
      (await authz.authorize("ReadTask", { identity: agent("agent-a") }, { kind: "task", task: task() }))
        .allowed,
    ).toBe(true);
  });
});

describe("CedarAuthorizer: the built-in baseline and stored sets", () => {
  it("decides the task and inventory actions with no stored policy at all", async () => {
    const { authz } = authorizer();

    expect(
      await authz.authorize("ReadTask", { identity: agent("agent-a") }, { kind: "task", task: task() }),
    ).toMatchObject({ allowed: true, policies: ["owner-agent-task-actions"], policyVersion: "v1" });
    expect(
      await authz.authorize(
        "ListAgents",
        { identity: user("admin", "jitv"), roles: ["admin"] },
        { kind: "zone", zone: "customer", tenant: "jitv" },
      ),
    ).toMatchObject({ allowed: true, policies: ["zone-admins"] });
  });

  it("lets a stored forbid narrow what the baseline permits, naming it", async () => {
    const { authz } = authorizer(
      '@id("no-refresh") @reason("refresh is frozen") forbid (principal, action == Jitv::Action::"Refresh", resource);',
    );
    const owned = { kind: "task" as const, task: task() };

    expect(await authz.authorize("Refresh", { identity: agent("agent-a") }, owned)).toEqual({
      allowed: false,
      reason: "forbidden by policy no-refresh (refresh is frozen)",
      policies: ["no-refresh"],
      policyVersion: "v1",
    });
    expect((await authz.authorize("Complete", { identity: agent("agent-a") }, owned)).allowed).toBe(true);
  });

  it("lets a stored permit widen it", async () => {
    const { authz } = authorizer(
      '@id("auditors-read") permit (principal is Jitv::User, action == Jitv::Action::"ReadTask", resource) when { principal.groups.contains("auditors") };',
    );
    const owned = { kind: "task" as const, task: task() };

    expect(
      await authz.authorize(
        "ReadTask",
        { identity: user("dave", undefined, { zone: "workforce", groups: ["auditors"] }) },
        owned,
      ),
    ).toMatchObject({ allowed: true, policies: ["auditors-read"] });
  });

  it("keeps a stored policy that reuses a built-in @id deciding, under a suffixed id", async () => {
    const { authz } = authorizer(
      '@id("zone-boundary") @reason("stored copy") forbid (principal, action == Jitv::Action::"Complete", resource);',
    );
    const owned = { kind: "task" as const, task: task() };

    expect(await authz.authorize("Complete", { identity: agent("agent-a") }, owned)).toMatchObject({
      allowed: false,
      policies: ["zone-boundary#stored"],
    });
    expect((await authz.authorize("Refresh", { identity: agent("agent-a") }, owned)).allowed).toBe(true);
  });
});

describe("CedarAuthorizer: loading and reloading policies", () => {
  const forbidAll = '@id("freeze") @reason("change freeze") forbid (principal, action, resource);';

  it("reloads when the store's version changes, but not before cacheMs", async () => {
    let now = TUESDAY_10.getTime();
    const { store, authz } = authorizer("", { now: () => new Date(now), cacheMs: 5000 });
    const request = vend(agent("agent-a"), template("reports-read"));

    expect((await authz.authorizeVend(request)).allowed).toBe(true);
    expect(store.reads).toBe(1);

    store.snapshot = { version: "v2", text: forbidAll };
    now += 4999;
    expect((await authz.authorizeVend(request)).allowed).toBe(true);
    expect(store.reads).toBe(1);

    now += 1;
    expect(await authz.authorizeVend(request)).toMatchObject({
      allowed: false,
      policies: ["freeze"],
      policyVersion: "v2",
    });
    expect(store.reads).toBe(2);
  });

  it("keeps using the loaded policies when the version did not change", async () => {
    let now = TUESDAY_10.getTime();
    const { store, authz } = authorizer(forbidAll, { now: () => new Date(now), cacheMs: 1000 });
    const request = vend(agent("agent-a"), template("reports-read"));
    await authz.authorizeVend(request);

    // Same version, different text: the authorizer trusts versions and does not re-parse.
    store.snapshot = { version: "v1", text: "" };
    now += 5000;

    expect((await authz.authorizeVend(request)).allowed).toBe(false);
    expect(store.reads).toBe(2);
  });

  it("reads the store once for concurrent first requests", async () => {
    const { store, authz } = authorizer();
    const request = vend(agent("agent-a"), template("reports-read"));

    const decisions = await Promise.all(Array.from({ length: 10 }, () => authz.authorizeVend(request)));

    expect(decisions.every((d) => d.allowed)).toBe(true);
    expect(store.reads).toBe(1);
  });

  it("picks up a template's changed agents list at once", async () => {
    const { authz } = authorizer();

    expect((await authz.authorizeVend(vend(agent("agent-b"), template("reports-read")))).allowed).toBe(false);
    const widened = template("reports-read", {
      agents: [{ issuer: AGENTS, subjects: ["agent-a", "agent-b"] }],
    });
    expect((await authz.authorizeVend(vend(agent("agent-b"), widened))).allowed).toBe(true);
  });

  it("answers 503 when the store fails before the first load, then keeps the loaded set", async () => {
    let now = TUESDAY_10.getTime();
    const { store, authz } = authorizer(forbidAll, { now: () => new Date(now), cacheMs: 1000 });
    const request = vend(agent("agent-a"), template("reports-read"));
    store.failure = new Error("connection reset");

    await expect(authz.authorizeVend(request)).rejects.toBeInstanceOf(UpstreamUnavailableError);

    store.failure = undefined;
    expect((await authz.authorizeVend(request)).allowed).toBe(false);
    store.failure = new Error("connection reset");
    now += 2000;
    expect(await authz.authorizeVend(request)).toMatchObject({ allowed: false, policies: ["freeze"] });
    expect(store.reads).toBe(3);
  });

  it("refuses to decide with a stored policy set that does not parse", async () => {
    const { authz } = authorizer("permit (principal, action, resource) when {");

    await expect(
      authz.authorizeVend(vend(agent("agent-a"), template("reports-read"))),
    ).rejects.toBeInstanceOf(InternalError);
  });

  it("keeps the loaded policies when a new version does not parse, and reports it", async () => {
    let now = TUESDAY_10.getTime();
    const errors: Error[] = [];
    const store = new FakePolicyStore(forbidAll);
    const authz = new CedarAuthorizer({
      store,
      now: () => new Date(now),
      cacheMs: 1000,
      onReloadError: (error) => errors.push(error),
    });
    const request = vend(agent("agent-a"), template("reports-read"));
    await authz.authorizeVend(request);

    store.snapshot = { version: "v2", text: "permit (principal, action, resource) when {" };
    now += 1000;

    expect(await authz.authorizeVend(request)).toMatchObject({ allowed: false, policyVersion: "v1" });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(InternalError);
    expect(errors[0]?.message).toBe("stored policy set version v2 does not parse");

    store.snapshot = { version: "v3", text: "" };
    now += 1000;
    expect(await authz.authorizeVend(request)).toMatchObject({ allowed: true, policyVersion: "v3" });
  });

  it("names a policy whatever its id, even one that looks like an object key", async () => {
    const { authz } = authorizer('@id("__proto__") forbid (principal, action, resource);');

    expect(await authz.authorizeVend(vend(agent("agent-a"), template("reports-read")))).toMatchObject({
      allowed: false,
      policies: ["__proto__"],
    });
  });
});
