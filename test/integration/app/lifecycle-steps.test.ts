import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { composeLifecycle } from "../../../lib/app/compose-lifecycle.js";
import type { TaskLifecycle } from "../../../lib/app/lifecycle-steps.js";
import { MemoryAuditLog } from "../../../lib/audit/logger-audit-log.js";
import { MemoryMetrics } from "../../../lib/audit/metrics.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { DynamoRolePolicyWriter } from "../../../lib/revocation/dynamo-role-policy-writer.js";
import type { RolePolicyWriter } from "../../../lib/revocation/revocation-store.js";
import { LocalLifecycleRunner } from "../../../lib/sandbox/local-lifecycle.js";
import { DynamoSecretRotator } from "../../../lib/secrets/dynamo-secret-rotator.js";
import { leaseKey } from "../../../lib/store/table.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../../../lib/tasks/dynamo-template-store.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { makeTask } from "../tasks/fixtures.js";

// The lifecycle's steps run by the real ASL on the local engine, on DynamoDB Local.

const ROLE = "arn:aws:iam::123456789012:role/jitv/reports-reader";
let table: TestTable;

beforeAll(async () => {
  table = await createTestTable();
  await new DynamoTemplateStore({ client: table.doc, tableName: table.tableName }).put(
    parseTemplate({
      name: "reports-read",
      zone: "workforce",
      roleArn: ROLE,
      sessionPolicy: {
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::reports/*" }],
      },
    }),
  );
});

function wire(writer: RolePolicyWriter) {
  const audit = new MemoryAuditLog();
  const metrics = new MemoryMetrics();
  let lifecycle: TaskLifecycle | undefined;
  const runner = new LocalLifecycleRunner({ steps: () => lifecycle as TaskLifecycle });
  lifecycle = composeLifecycle({
    doc: table.doc,
    tableName: table.tableName,
    writer,
    rotator: new DynamoSecretRotator({ client: table.doc, tableName: table.tableName }),
    tokens: runner,
    audit,
    metrics,
  });
  const tasks = new DynamoTaskRepository({ client: table.doc, tableName: table.tableName });
  return { audit, metrics, runner, tasks, lifecycle };
}

describe("lifecycle steps", () => {
  it("marks the task revocation_failed, audits it and counts a metric when revocation keeps failing; the lease stays", async () => {
    const failing: RolePolicyWriter = {
      get: async () => undefined,
      freeInlineChars: async () => 10_240,
      overflowPolicies: async () => [],
      getOverflow: async () => "",
      putOverflow: async () => undefined,
      put: async () => {
        throw new Error("IAM is down");
      },
      delete: async () => {
        throw new Error("IAM is down");
      },
    };
    const { audit, metrics, runner, tasks } = wire(failing);
    const task = makeTask();
    await tasks.create(task);
    await runner.start(task);
    await tasks.transition(task.taskId, ["active"], "completed");
    const stored = await tasks.get(task.taskId);
    await runner.sendSuccess(stored?.taskToken ?? "", { outcome: "completed" });
    await runner.execution(task.taskId);

    expect(await tasks.get(task.taskId)).toMatchObject({
      status: "revocation_failed",
      reason: expect.stringContaining("lifecycle step failed after retries"),
    });
    expect(metrics.counts.get("RevocationFailed")).toBe(1);
    expect(audit.events.map((e) => e.event)).toContain("task.revocation_failed");
    const lease = await table.doc.send(
      new GetCommand({ TableName: table.tableName, Key: leaseKey(task.taskId) }),
    );
    expect(lease.Item).toMatchObject({ type: "lease", leaseKind: "task" });
  });

  it("moves on at once when the task ended before its execution registered a token", async () => {
    const writer = new DynamoRolePolicyWriter({ client: table.doc, tableName: table.tableName });
    const { runner, tasks } = wire(writer);
    const task = makeTask();
    await tasks.create(task);
    await tasks.transition(task.taskId, ["active"], "completed"); // completed before the lifecycle started
    await runner.start(task);
    await runner.execution(task.taskId);
    expect(await tasks.get(task.taskId)).toMatchObject({
      status: "completed",
      revokedAt: expect.any(String),
      closedAt: expect.any(String),
    });
    expect(await writer.get(ROLE, "jitv-revoked-tasks")).toContain(task.taskId);
  });

  it("runs the backstop idempotently after a clean lifecycle", async () => {
    const writer = new DynamoRolePolicyWriter({ client: table.doc, tableName: table.tableName });
    const { runner, tasks, lifecycle, metrics } = wire(writer);
    const task = makeTask();
    await tasks.create(task);
    await runner.start(task);
    await tasks.transition(task.taskId, ["active"], "completed");
    await runner.sendSuccess((await tasks.get(task.taskId))?.taskToken ?? "", { outcome: "completed" });
    await runner.execution(task.taskId);
    const closed = await tasks.get(task.taskId);
    await lifecycle.backstop({ taskId: task.taskId });
    expect(await tasks.get(task.taskId)).toEqual(closed);
    expect(metrics.counts.get("TaskExpiredByBackstop")).toBeUndefined();
  });
});
