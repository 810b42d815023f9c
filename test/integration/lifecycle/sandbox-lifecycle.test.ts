import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Logger } from "@aws-lambda-powertools/logger";
import { DescribeTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams";
import { DeleteCommand, GetCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { handleTtlRecords } from "../../../lib/app/ttl-backstop.js";
import { SANDBOX_TABLE, type Sandbox, startSandbox } from "../../../lib/sandbox/sandbox.js";
import { toLambdaRecord } from "../../../lib/sandbox/stream-poller.js";
import { leaseKey, pruneLeaseKey, revocationKey } from "../../../lib/store/table.js";
import { asTtlDeletion, localClientConfig, readStream } from "../../support/dynamodb.js";
import { sandboxToken } from "../../support/sandbox.js";

// The lifecycle end to end in the sandbox: DynamoDB Local (real TTL and stream), the real
// ASL run by aws-local-stepfunctions, the real local issuer, the HTTP API.

const root = resolve(import.meta.dirname, "../../..");
const DB_ROLE = "arn:aws:iam::123456789012:role/jitv/db-maintainer";
const SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jitv-demo/reporting-db-a1B2c3";

function sandboxTemplates(dir: string, issuerPort: number): string {
  const out = join(dir, "templates");
  mkdirSync(out);
  for (const file of ["db-maintenance.json", "s3-reports-read.json", "prod-db-admin.json"]) {
    const text = readFileSync(join(root, "examples", "templates", file), "utf8");
    writeFileSync(join(out, file), text.replaceAll("127.0.0.1:8788", `127.0.0.1:${issuerPort}`));
  }
  // A customer-zone template that needs one approver.
  writeFileSync(
    join(out, "tenant-export.json"),
    JSON.stringify({
      name: "tenant-export",
      zone: "customer",
      roleArn: "arn:aws:iam::123456789012:role/jitv/tenant-exporter",
      sessionPolicy: {
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::exports/{{tenant}}/*" },
        ],
      },
      agents: [{ issuer: `http://127.0.0.1:${issuerPort}/customer-agents`, subjects: ["support-agent"] }],
      approval: { required: true, quorum: 1, timeoutSeconds: 600 },
    }),
  );
  return out;
}

type SandboxTestOptions = { lifecycleTimeoutSeconds?: number; now?: () => Date };

async function start(options: SandboxTestOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), "jitv-lifecycle-"));
  // Reserve the issuer port first: the example templates name the issuer by URL.
  const { createServer } = await import("node:net");
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
  const issuerPort = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return startSandbox({
    port: 0,
    issuerPort,
    templatesDir: sandboxTemplates(dir, issuerPort),
    rolesDir: join(root, "examples", "roles"),
    stateFile: join(dir, "state.json"),
    // The tests read what they need through the API.
    logger: new Logger({ serviceName: "jitv-test", logLevel: "SILENT" }),
    ...options,
  });
}

class Client {
  constructor(readonly sandbox: Sandbox) {}

  /** A token of a demo identity; with `forAgent`, a customer user's delegation token for that agent. */
  token(name: string, forAgent?: string): Promise<string> {
    return sandboxToken(this.sandbox, name, forAgent);
  }

  async call(method: string, path: string, options: { as?: string; body?: unknown } = {}) {
    const res = await fetch(`${this.sandbox.apiUrl}${path}`, {
      method,
      headers: {
        ...(options.as ? { authorization: `Bearer ${await this.token(options.as)}` } : {}),
        ...(options.body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted field by field
    return { status: res.status, json: (await res.json()) as any };
  }

  vend(template: string, body: Record<string, unknown> = {}, as = "demo-agent") {
    return this.call("POST", "/v1/tasks", { as, body: { template, ...body } });
  }

  decide(taskId: string, decision: "approve" | "deny", as: string) {
    return this.call("POST", `/v1/tasks/${taskId}/${decision}`, { as });
  }

  simulate(taskId: string, action: string, resource: string) {
    return this.call("POST", "/v1/sandbox/simulate", {
      as: "demo-agent",
      body: { taskId, action, resource },
    });
  }

  async secretVersion(): Promise<string> {
    const res = await this.call("GET", `/v1/sandbox/secrets/${encodeURIComponent("jitv-demo/reporting-db")}`);
    expect(res.status).toBe(200);
    return res.json.versionId;
  }

  async status(taskId: string): Promise<string> {
    return (await this.call("GET", `/v1/tasks/${taskId}`, { as: "demo-agent" })).json.status;
  }

  async task(taskId: string) {
    return this.sandbox.core.tasks.get(taskId);
  }
}

/** One sandbox per describe block: started before its tests, stopped after them. */
function useSandbox(options: SandboxTestOptions = {}) {
  const handle = {} as { sandbox: Sandbox; c: Client };
  beforeAll(async () => {
    handle.sandbox = await start(options);
    handle.c = new Client(handle.sandbox);
  });
  afterAll(async () => {
    await handle.sandbox?.close();
  });
  return handle;
}

describe("a task's lifecycle in the sandbox", () => {
  const s = useSandbox();

  it("vend → allowed → complete → denied by revocation, secret rotated, task completed and closed", async () => {
    const vended = await s.c.vend("db-maintenance", { purpose: "vacuum" });
    expect(vended.status).toBe(201);
    const { taskId } = vended.json;
    const before = await s.c.secretVersion();

    const allowed = await s.c.simulate(taskId, "secretsmanager:GetSecretValue", SECRET);
    expect(allowed.json).toMatchObject({ allowed: true, decision: "Allowed" });
    const outside = await s.c.simulate(taskId, "secretsmanager:DeleteSecret", SECRET);
    expect(outside.json).toMatchObject({ allowed: false, decision: "ImplicitlyDenied" });

    const done = await s.c.call("POST", `/v1/tasks/${taskId}/complete`, { as: "demo-agent" });
    expect(done).toEqual({ status: 200, json: { taskId, status: "completed" } });
    await s.sandbox.runner.execution(taskId);

    const denied = await s.c.simulate(taskId, "secretsmanager:GetSecretValue", SECRET);
    expect(denied.json).toMatchObject({ allowed: false, decision: "ExplicitlyDenied" });
    expect(denied.json.reason).toContain("jitv-revoked-tasks");
    expect(await s.c.secretVersion()).not.toBe(before);
    expect(await s.c.status(taskId)).toBe("completed");
    expect(await s.c.task(taskId)).toMatchObject({
      revokedAt: expect.any(String),
      secretsRotatedAt: expect.any(String),
      closedAt: expect.any(String),
    });

    // A task that is not active never yields credentials again.
    const refresh = await s.c.call("POST", `/v1/tasks/${taskId}/credentials`, { as: "demo-agent" });
    expect(refresh.status).toBe(409);
    expect(refresh.json.error.code).toBe("conflict");
    const again = await s.c.call("POST", `/v1/tasks/${taskId}/complete`, { as: "demo-agent" });
    expect(again.status).toBe(409);
  });

  it("refreshes an active task's credentials, never past its deadline", async () => {
    const vended = await s.c.vend("s3-reports-read", { ttlSeconds: 900 });
    const { taskId, expiresAt } = vended.json;
    const refresh = await s.c.call("POST", `/v1/tasks/${taskId}/credentials`, { as: "demo-agent" });
    expect(refresh.status).toBe(200);
    expect(refresh.json.credentials.AccessKeyId).toMatch(/^JITVSANDBOX/);
    expect(Date.parse(refresh.json.credentials.Expiration)).toBeLessThanOrEqual(Date.parse(expiresAt));
    expect((await s.c.task(taskId))?.issuedCount).toBe(2);
    // Another agent cannot refresh or complete it.
    const other = await s.c.call("POST", `/v1/tasks/${taskId}/credentials`, { as: "ci-agent" });
    expect(other.status).toBe(404);
  });

  it("lets an admin revoke a task with a reason; the agent cannot", async () => {
    const { taskId } = (await s.c.vend("s3-reports-read")).json;
    const notAdmin = await s.c.call("POST", `/v1/tasks/${taskId}/revoke`, {
      as: "demo-agent",
      body: { reason: "x" },
    });
    expect(notAdmin.status).toBe(403);
    // A customer-zone admin does not reach a workforce task: it is unknown to it.
    const otherZone = await s.c.call("POST", `/v1/tasks/${taskId}/revoke`, {
      as: "acme-admin",
      body: { reason: "x" },
    });
    expect(otherZone.status).toBe(404);
    const noReason = await s.c.call("POST", `/v1/tasks/${taskId}/revoke`, { as: "admin", body: {} });
    expect(noReason.status).toBe(400);
    const revoked = await s.c.call("POST", `/v1/tasks/${taskId}/revoke`, {
      as: "admin",
      body: { reason: "suspicious activity" },
    });
    expect(revoked).toEqual({ status: 200, json: { taskId, status: "revoked" } });
    await s.sandbox.runner.execution(taskId);
    const denied = await s.c.simulate(taskId, "s3:GetObject", "arn:aws:s3:::jitv-demo-reports/q3.csv");
    expect(denied.json.decision).toBe("ExplicitlyDenied");
    expect((await s.c.call("GET", `/v1/tasks/${taskId}`, { as: "admin" })).json).toMatchObject({
      status: "revoked",
      reason: "suspicious activity",
    });
    const twice = await s.c.call("POST", `/v1/tasks/${taskId}/revoke`, {
      as: "admin",
      body: { reason: "again" },
    });
    expect(twice.status).toBe(409);
  });

  it("loses no revocation when 20 tasks of one role complete at once", async () => {
    const tasks = await Promise.all(Array.from({ length: 20 }, () => s.c.vend("s3-reports-read")));
    const ids = tasks.map((t) => t.json.taskId as string);
    const results = await Promise.all(
      ids.map((id) => s.c.call("POST", `/v1/tasks/${id}/complete`, { as: "demo-agent" })),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    await Promise.all(ids.map((id) => s.sandbox.runner.execution(id)));
    const policy = JSON.parse(
      (await s.sandbox.writer.get(
        "arn:aws:iam::123456789012:role/jitv/reports-reader",
        "jitv-revoked-tasks",
      )) ?? "{}",
    );
    const listed = policy.Statement[0].Condition.StringEquals["aws:PrincipalTag/jitv:task"];
    expect(listed).toEqual(expect.arrayContaining(ids));
  });
});

describe("approval gates", () => {
  /** When set, the API's clock stands still here. */
  let frozen: Date | undefined;
  const s = useSandbox({ now: () => frozen ?? new Date() });

  it("waits for a quorum of two distinct approvers; the pending task never yields credentials", async () => {
    const vended = await s.c.vend("prod-db-admin", { purpose: "resize the cluster" });
    expect(vended.status).toBe(202);
    expect(vended.json).toMatchObject({ status: "pending_approval" });
    expect(vended.json.credentials).toBeUndefined();
    const { taskId } = vended.json;

    expect((await s.c.call("POST", `/v1/tasks/${taskId}/credentials`, { as: "demo-agent" })).status).toBe(
      409,
    );
    expect((await s.c.decide(taskId, "approve", "demo-agent")).status).toBe(403); // an agent is no approver
    expect((await s.c.decide(taskId, "approve", "acme-admin")).status).toBe(404); // another zone's approver
    expect((await s.c.decide(taskId, "approve", "pat")).json).toEqual({
      taskId,
      status: "pending_approval",
      approvals: 1,
    });
    expect((await s.c.decide(taskId, "approve", "pat")).status).toBe(409); // the same approver twice
    expect((await s.c.call("POST", `/v1/tasks/${taskId}/credentials`, { as: "demo-agent" })).status).toBe(
      409,
    );
    // The quorum is reached at a known instant of the API's clock (a minute ahead of the real one).
    const approvedAt = new Date(Date.now() + 60_000);
    frozen = approvedAt;
    const decided = await s.c.decide(taskId, "approve", "quinn").finally(() => {
      frozen = undefined;
    });
    expect(decided.json).toEqual({ taskId, status: "active", approvals: 2 });

    const refresh = await s.c.call("POST", `/v1/tasks/${taskId}/credentials`, { as: "demo-agent" });
    expect(refresh.status).toBe(200);
    expect(refresh.json.credentials.AccessKeyId).toMatch(/^JITVSANDBOX/);
    expect(Date.parse(refresh.json.credentials.Expiration)).toBeLessThanOrEqual(
      Date.parse(refresh.json.expiresAt),
    );
    // Its life (900 s) started at approval.
    expect(refresh.json.expiresAt).toBe(new Date(approvedAt.getTime() + 900_000).toISOString());

    // And it ends like any task: complete → revoked on its role.
    expect((await s.c.call("POST", `/v1/tasks/${taskId}/complete`, { as: "demo-agent" })).status).toBe(200);
    await s.sandbox.runner.execution(taskId);
    expect(await s.c.task(taskId)).toMatchObject({ status: "completed", revokedAt: expect.any(String) });
  });

  it("a refusal denies the task for good", async () => {
    const { taskId } = (await s.c.vend("prod-db-admin")).json;
    expect((await s.c.decide(taskId, "deny", "pat")).json).toEqual({
      taskId,
      status: "denied",
      approvals: 0,
    });
    await s.sandbox.runner.execution(taskId);
    expect(await s.c.task(taskId)).toMatchObject({ status: "denied", closedAt: expect.any(String) });
    expect((await s.c.decide(taskId, "approve", "quinn")).status).toBe(409);
    expect((await s.c.call("POST", `/v1/tasks/${taskId}/credentials`, { as: "demo-agent" })).status).toBe(
      409,
    );
  });

  it("the user a delegated task acts for cannot approve it", async () => {
    const subjectToken = await s.c.token("acme-admin", "support-agent");
    const vended = await s.c.vend("tenant-export", { subjectToken }, "support-agent");
    expect(vended.status).toBe(202);
    expect(vended.json.onBehalfOf).toEqual({ user: "acme-admin", tenant: "acme" });
    const self = await s.c.decide(vended.json.taskId, "approve", "acme-admin");
    expect(self.status).toBe(403);
    expect(self.json.error.message).toContain("own task");
  });
});

describe("expiry", () => {
  const s = useSandbox({ lifecycleTimeoutSeconds: 1 });

  it("a task nobody approves in time is denied", async () => {
    const { taskId } = (await s.c.vend("prod-db-admin")).json;
    await s.sandbox.runner.execution(taskId);
    expect(await s.c.task(taskId)).toMatchObject({ status: "denied", reason: "approval timed out" });
  });

  it("a task nobody completes is expired and revoked by the state machine at its deadline", async () => {
    const { taskId } = (await s.c.vend("db-maintenance", { ttlSeconds: 900 })).json;
    const before = await s.c.secretVersion();
    await s.sandbox.runner.execution(taskId); // the execution's deadline (1 s here) passes
    const task = await s.c.task(taskId);
    expect(task).toMatchObject({
      status: "expired",
      revokedAt: expect.any(String),
      closedAt: expect.any(String),
    });
    const denied = await s.c.simulate(taskId, "secretsmanager:GetSecretValue", SECRET);
    expect(denied.json.decision).toBe("ExplicitlyDenied");
    expect(await s.c.secretVersion()).not.toBe(before);
  });
});

describe("the TTL backstop", () => {
  const s = useSandbox();

  // Time passes: an item's TTL moves into the past, as it would at its deadline.
  const expireNow = (key: { pk: string; sk: string }) =>
    s.sandbox.doc.send(
      new UpdateCommand({
        TableName: SANDBOX_TABLE,
        Key: key,
        UpdateExpression: "SET ttlEpoch = :past",
        ExpressionAttributeValues: { ":past": Math.floor(Date.now() / 1000) - 5 },
      }),
    );

  // The one test that waits for DynamoDB Local's real TTL sweep (real time: its job sleeps 10 s
  // between pages of 20 items): expiry → stream → poller → backstop, end to end. Every other
  // TTL test hands the backstop a stream record itself.
  it("revokes and rotates through DynamoDB TTL and its stream when the state machine is gone (slow: waits for DynamoDB Local's TTL sweep)", {
    timeout: 90_000,
  }, async () => {
    const { taskId } = (await s.c.vend("db-maintenance")).json;
    const before = await s.c.secretVersion();
    s.sandbox.runner.abort(taskId); // the execution is gone: only the lease remains
    await s.sandbox.runner.execution(taskId);
    expect((await s.c.task(taskId))?.revokedAt).toBeUndefined();

    // The lease reaches its deadline, DynamoDB Local's TTL deletes it, the stream carries
    // the REMOVE made by the TTL service principal, the backstop runs.
    await expireNow(leaseKey(taskId));
    await expect
      .poll(async () => (await s.c.task(taskId))?.closedAt, { timeout: 60_000, interval: 500 })
      .toEqual(expect.any(String));
    expect(await s.c.task(taskId)).toMatchObject({ status: "expired", revokedAt: expect.any(String) });
    expect(await s.c.secretVersion()).not.toBe(before);
    const denied = await s.c.simulate(taskId, "secretsmanager:GetSecretValue", SECRET);
    expect(denied.json.decision).toBe("ExplicitlyDenied");
  });

  it("prunes a revocation entry once its prune lease's REMOVE by TTL reaches the backstop", async () => {
    const { taskId } = (await s.c.vend("db-maintenance")).json;
    expect((await s.c.call("POST", `/v1/tasks/${taskId}/complete`, { as: "demo-agent" })).status).toBe(200);
    await s.sandbox.runner.execution(taskId);
    const listed = async () => {
      const policy = await s.sandbox.writer.get(DB_ROLE, "jitv-revoked-tasks");
      return policy === undefined
        ? []
        : (JSON.parse(policy).Statement[0].Condition.StringEquals["aws:PrincipalTag/jitv:task"] as string[]);
    };
    expect(await listed()).toContain(taskId);

    // 20 minutes later every credential of the task has expired. (Time passes by moving the
    // recorded expiry back.) The prune lease is then deleted as DynamoDB's TTL would: by hand,
    // its real REMOVE record read from the table's stream and stamped with the TTL service.
    const pruneKey = pruneLeaseKey(DB_ROLE, taskId);
    const pruneLease = await s.sandbox.doc.send(new GetCommand({ TableName: SANDBOX_TABLE, Key: pruneKey }));
    expect(pruneLease.Item).toMatchObject({ type: "lease", leaseKind: "prune", taskId, roleArn: DB_ROLE });
    await s.sandbox.doc.send(
      new UpdateCommand({
        TableName: SANDBOX_TABLE,
        Key: revocationKey(DB_ROLE, taskId),
        UpdateExpression: "SET credentialsExpireAt = :past",
        ExpressionAttributeValues: { ":past": new Date(Date.now() - 60_000).toISOString() },
      }),
    );
    await s.sandbox.doc.send(new DeleteCommand({ TableName: SANDBOX_TABLE, Key: pruneKey }));
    const config = localClientConfig(s.sandbox.dynamodbEndpoint);
    const client = new DynamoDBClient(config);
    const streams = new DynamoDBStreamsClient(config);
    onTestFinished(() => {
      client.destroy();
      streams.destroy();
    });
    const { Table } = await client.send(new DescribeTableCommand({ TableName: SANDBOX_TABLE }));
    const removed = (await readStream(streams, Table?.LatestStreamArn ?? "")).filter(
      (r) =>
        r.eventName === "REMOVE" &&
        r.dynamodb?.Keys?.pk?.S === pruneKey.pk &&
        r.dynamodb?.Keys?.sk?.S === pruneKey.sk,
    );
    expect(removed).toHaveLength(1);

    await expect(
      handleTtlRecords(removed.map(asTtlDeletion).map(toLambdaRecord), s.sandbox.lifecycle),
    ).resolves.toEqual({ batchItemFailures: [] });
    expect(await listed()).not.toContain(taskId);
    const entry = await s.sandbox.doc.send(
      new GetCommand({ TableName: SANDBOX_TABLE, Key: revocationKey(DB_ROLE, taskId), ConsistentRead: true }),
    );
    expect(entry.Item).toBeUndefined();
  });
});
