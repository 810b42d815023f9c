import { randomUUID } from "node:crypto";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MemoryAuditLog } from "../../../lib/audit/logger-audit-log.js";
import { UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import { newTaskId } from "../../../lib/domain/ids.js";
import type { TaskTemplate } from "../../../lib/domain/template.js";
import { DRIFT_REVOKER, DriftDetector } from "../../../lib/drift/detector.js";
import { DynamoDriftCounters } from "../../../lib/drift/dynamo-counters.js";
import { DRIFT_DETAIL_TYPE, EventBridgeDriftNotifier } from "../../../lib/drift/eventbridge-notifier.js";
import { driftSeenKey } from "../../../lib/store/table.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../../../lib/tasks/dynamo-template-store.js";
import type { TemplateStore } from "../../../lib/tasks/template-store.js";
import { cloudTrailRecord, type FixtureName } from "../../fixtures/cloudtrail/records.js";
import { fixtureTask, reportsTemplate } from "../../fixtures/cloudtrail/task.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { MemoryTaskTokens, MemoryTemplateStore } from "../../support/fakes.js";

// The detector against DynamoDB Local: counters, seen markers and the revoke transition are real
// conditional writes; only EventBridge is mocked. Several detectors on one table stand for
// concurrent Lambdas, which share nothing but the table.

const events = mockClient(EventBridgeClient);
let table: TestTable;

beforeAll(async () => {
  table = await createTestTable();
});

beforeEach(() => {
  events.reset();
  events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
});

/** A template, an active task of it with a lifecycle token, and detectors sharing the table. */
async function scenario(drift?: Record<string, unknown>, options: { templates?: TemplateStore } = {}) {
  const { doc: client, tableName } = table;
  const template: TaskTemplate = reportsTemplate({
    name: `reports-${randomUUID().slice(0, 8)}`,
    ...(drift === undefined ? {} : { drift }),
  });
  const templates = new DynamoTemplateStore({ client, tableName });
  await templates.put(template);
  const tasks = new DynamoTaskRepository({ client, tableName });
  const now = Date.now();
  const task = fixtureTask(template, {
    taskId: newTaskId(),
    createdAt: new Date(now - 60_000).toISOString(),
    expiresAt: new Date(now + 15 * 60_000).toISOString(),
  });
  await tasks.create(task);
  await tasks.mark(task.taskId, { taskToken: `token-${task.taskId}` });
  const tokens = new MemoryTaskTokens();
  const audit = new MemoryAuditLog();
  const detector = () =>
    new DriftDetector({
      tasks,
      templates: options.templates ?? templates,
      counters: new DynamoDriftCounters({ client, tableName }),
      tokens,
      notifier: new EventBridgeDriftNotifier({ client: new EventBridgeClient({}), eventBusName: "jitv" }),
      audit,
    });
  /** A fixture record made by this task, with a fresh event id, `second` seconds into the task. */
  const record = (name: FixtureName, second = 0, eventID = randomUUID()) =>
    cloudTrailRecord(name, {
      taskId: task.taskId,
      eventID,
      eventTime: new Date(now - 30_000 + second * 1000).toISOString(),
    });
  return { task, tasks, tokens, audit, detector, record };
}

const driftEvents = () =>
  events.commandCalls(PutEventsCommand).map((call) => {
    const [entry] = call.args[0].input.Entries ?? [];
    return { ...entry, Detail: JSON.parse(entry?.Detail ?? "{}") };
  });

describe("DriftDetector on DynamoDB Local", () => {
  it("leaves a task alone while it does what its session policy allows", async () => {
    const { task, tasks, tokens, detector, record } = await scenario();
    const report = await detector().handle([record("s3-get-object"), record("sts-get-caller-identity")]);
    expect(report).toEqual({ handled: 2, duplicates: 0, ignored: 0, findings: [] });
    expect((await tasks.get(task.taskId))?.status).toBe("active");
    expect(tokens.signals).toEqual([]);
    expect(events.commandCalls(PutEventsCommand)).toHaveLength(0);
  });

  it("revokes on an off-policy action as an admin revoke does, audits the evidence and notifies", async () => {
    const { task, tasks, tokens, audit, detector, record } = await scenario();
    const eventID = randomUUID();
    const report = await detector().handle([record("s3-get-object-other-bucket", 0, eventID)]);

    const reason =
      "drift: off-policy-action: s3:GetObject on arn:aws:s3:::payroll-exports/2026/11/salaries.csv, " +
      "arn:aws:s3:::payroll-exports is not allowed by the task's session policy";
    expect(report.findings).toEqual([
      { taskId: task.taskId, rule: "off-policy-action", detail: reason.slice(26), outcome: "revoked" },
    ]);
    expect(await tasks.get(task.taskId)).toMatchObject({ status: "revoked", reason });
    // The lifecycle execution is told, and then denies the task's sessions on its role.
    expect(tokens.signals).toEqual([{ taskToken: `token-${task.taskId}`, output: { outcome: "revoked" } }]);
    expect(audit.events).toEqual([
      expect.objectContaining({
        event: "task.revoked",
        taskId: task.taskId,
        reason,
        revokedBy: DRIFT_REVOKER,
        eventIds: [eventID],
        actions: ["s3:GetObject"],
      }),
      expect.objectContaining({
        event: "drift.detected",
        taskId: task.taskId,
        rule: "off-policy-action",
        outcome: "revoked",
        eventIds: [eventID],
        notified: true,
      }),
    ]);
    expect(driftEvents()).toEqual([
      expect.objectContaining({
        Source: "jitv",
        DetailType: DRIFT_DETAIL_TYPE,
        EventBusName: "jitv",
        Detail: expect.objectContaining({
          taskId: task.taskId,
          rule: "off-policy-action",
          outcome: "revoked",
        }),
      }),
    ]);
    expect(JSON.stringify(driftEvents())).not.toContain(`token-${task.taskId}`);
  });

  it("handles each CloudTrail event once, however often it is delivered, and the marker expires", async () => {
    const { audit, detector, record } = await scenario({ offPolicyActions: "audit" });
    const eventID = randomUUID();
    const first = await detector().handle([record("s3-put-object-access-denied", 0, eventID)]);
    const again = await detector().handle([
      record("s3-put-object-access-denied", 0, eventID),
      record("s3-put-object-access-denied", 0, eventID),
    ]);
    expect(first).toMatchObject({
      handled: 1,
      findings: [{ rule: "off-policy-action", outcome: "audited" }],
    });
    expect(again).toEqual({ handled: 0, duplicates: 2, ignored: 0, findings: [] });
    expect(audit.events.filter((e) => e.event === "drift.detected")).toHaveLength(1);
    const marker = await table.doc.send(
      new GetCommand({ TableName: table.tableName, Key: driftSeenKey(eventID) }),
    );
    expect(marker.Item?.ttlEpoch).toBeGreaterThan(Date.now() / 1000);
  });

  it("revokes on the 5th AccessDenied within 60 s, counted across detectors, not on the 4th", async () => {
    // Off-policy calls are only audited here, so only the burst rule can revoke.
    const { task, tasks, detector, record } = await scenario({ offPolicyActions: "audit" });
    const lambdas = [detector(), detector()];
    const denied = [0, 10, 20, 30].map((second) => record("ec2-describe-instances-unauthorized", second));
    for (const [i, r] of denied.entries()) await lambdas[i % 2]?.handle([r]);
    // Redeliveries of the same errors do not count.
    await lambdas[0]?.handle(denied);
    expect((await tasks.get(task.taskId))?.status).toBe("active");

    const report = await lambdas[1]?.handle([record("s3-put-object-access-denied", 40)]);
    expect(report?.findings).toContainEqual({
      taskId: task.taskId,
      rule: "access-denied-burst",
      detail: "5 AccessDenied errors within 60 s (ec2:DescribeInstances, s3:PutObject)",
      outcome: "revoked",
    });
    expect((await tasks.get(task.taskId))?.reason).toBe(
      "drift: access-denied-burst: 5 AccessDenied errors within 60 s (ec2:DescribeInstances, s3:PutObject)",
    );
  });

  it("does not join AccessDenied errors further apart than the template's window", async () => {
    const { task, tasks, detector, record } = await scenario({
      offPolicyActions: "audit",
      accessDeniedBurst: { count: 3, windowSeconds: 10 },
    });
    for (const second of [0, 8, 16, 24])
      await detector().handle([record("iam-list-users-access-denied", second)]);
    expect((await tasks.get(task.taskId))?.status).toBe("active");
    await detector().handle([record("iam-list-users-access-denied", 20)]);
    expect((await tasks.get(task.taskId))?.status).toBe("revoked");
  });

  it("revokes once under a flood of off-policy records handled by concurrent detectors", async () => {
    const { task, tokens, audit, detector, record } = await scenario();
    const lambdas = [detector(), detector(), detector(), detector()];
    const flood = Array.from({ length: 24 }, (_, i) => record("s3-get-object-other-bucket", i % 10));
    const reports = await Promise.all(
      lambdas.map((lambda, i) => lambda.handle(flood.filter((_, j) => j % lambdas.length === i))),
    );
    const outcomes = reports.flatMap((r) => r.findings.map((f) => f.outcome));
    expect(outcomes.filter((o) => o === "revoked")).toHaveLength(1);
    expect(audit.events.filter((e) => e.event === "task.revoked")).toHaveLength(1);
    expect(tokens.signals).toHaveLength(1);
    expect(driftEvents().filter((e) => e.Detail.taskId === task.taskId)).toHaveLength(1);
  });

  it("handles a record again after its handling failed", async () => {
    const failing = new MemoryTemplateStore();
    const { task, tasks, detector, record } = await scenario(undefined, { templates: failing });
    failing.fail(new UpstreamUnavailableError("template store unavailable"), "get");
    const off = record("s3-get-object-other-bucket");
    await expect(detector().handle([off])).rejects.toThrow("template store unavailable");
    expect((await tasks.get(task.taskId))?.status).toBe("active");
    // EventBridge retries the event: it is not mistaken for a duplicate.
    expect(await detector().handle([off])).toMatchObject({ handled: 1, duplicates: 0 });
    expect((await tasks.get(task.taskId))?.status).toBe("revoked");
  });

  it("ignores records of other principals, unknown tasks and other agents, and of ended tasks", async () => {
    const { task, tasks, detector, record } = await scenario();
    const unknownTask = cloudTrailRecord("s3-get-object-other-bucket", {
      taskId: newTaskId(),
      eventID: randomUUID(),
    });
    const otherAgent = record("s3-get-object-other-bucket");
    otherAgent.userIdentity.sessionContext.sourceIdentity = "ci-agent";
    const report = await detector().handle([record("iam-user-get-object"), unknownTask, otherAgent]);
    expect(report).toEqual({ handled: 0, duplicates: 0, ignored: 3, findings: [] });
    expect((await tasks.get(task.taskId))?.status).toBe("active");

    await tasks.transition(task.taskId, ["active"], "completed");
    expect(await detector().handle([record("s3-get-object-other-bucket")])).toEqual({
      handled: 1,
      duplicates: 0,
      ignored: 0,
      findings: [],
    });
    expect((await tasks.get(task.taskId))?.status).toBe("completed");
  });
});
