import { randomUUID } from "node:crypto";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { SendTaskSuccessCommand, SFNClient } from "@aws-sdk/client-sfn";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import type { EventBridgeEvent } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { newTaskId } from "../../../lib/domain/ids.js";
import type { DriftReport } from "../../../lib/drift/detector.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../../../lib/tasks/dynamo-template-store.js";
import { cloudTrailRecord } from "../../fixtures/cloudtrail/records.js";
import { fixtureTask, reportsTemplate } from "../../fixtures/cloudtrail/task.js";
import { recordAwsCalls } from "../../support/aws-calls.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { callsNotAllowed } from "../../support/function-roles.js";
import {
  auditEvents,
  captureLogs,
  lambdaContext,
  setLambdaEnvironment,
} from "../functions/lambda-harness.js";

// functions/drift.ts through its exported handler, fed EventBridge events in the shape the
// DriftDetector rule delivers them, on DynamoDB Local; Step Functions and EventBridge mocked.

const sfn = mockClient(SFNClient);
const events = mockClient(EventBridgeClient);
const recorder = recordAwsCalls(sfn, events);
type Handler = typeof import("../../../functions/drift.js")["handler"];
let handler: (event: EventBridgeEvent<string, unknown>) => Promise<DriftReport>;
let table: TestTable;
let tasks: DynamoTaskRepository;
let restoreEnv: () => void;
let logs: ReturnType<typeof captureLogs>;

beforeAll(async () => {
  table = await createTestTable();
  tasks = new DynamoTaskRepository({ client: table.doc, tableName: table.tableName });
  restoreEnv = setLambdaEnvironment({
    JITV_TABLE_NAME: table.tableName,
    JITV_EVENT_BUS_NAME: "jitv-security",
  });
  vi.resetModules();
  const drift: Handler = recorder.attribute(
    "functions/drift.ts",
    (await import("../../../functions/drift.js")).handler,
  );
  handler = (event) => drift(event, lambdaContext("jitv-drift"));
});

afterAll(() => {
  recorder.restore();
  vi.restoreAllMocks();
  restoreEnv?.();
});

beforeEach(() => {
  sfn.reset();
  events.reset();
  sfn.on(SendTaskSuccessCommand).resolves({});
  events.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
  logs = captureLogs();
});

async function activeTask() {
  const template = reportsTemplate({ name: `reports-${randomUUID().slice(0, 8)}` });
  await new DynamoTemplateStore({ client: table.doc, tableName: table.tableName }).put(template);
  const now = Date.now();
  const task = fixtureTask(template, {
    taskId: newTaskId(),
    createdAt: new Date(now - 60_000).toISOString(),
    expiresAt: new Date(now + 15 * 60_000).toISOString(),
  });
  await tasks.create(task);
  await tasks.mark(task.taskId, { taskToken: "lifecycle-task-token" });
  return task;
}

/** The event the rule delivers for one of the task's calls. */
function delivered(taskId: string, fixture: "s3-get-object" | "s3-get-object-other-bucket") {
  const envelope = cloudTrailRecord("eventbridge-s3-get-object");
  envelope.detail = cloudTrailRecord(fixture, {
    taskId,
    eventID: randomUUID(),
    eventTime: new Date().toISOString(),
  });
  return envelope as EventBridgeEvent<string, unknown>;
}

describe("functions/drift.ts", () => {
  it("revokes an off-policy task through its lifecycle, notifies and audits, once per event", async () => {
    const task = await activeTask();
    const event = delivered(task.taskId, "s3-get-object-other-bucket");
    const report = await handler(event);

    expect(report.findings).toEqual([
      expect.objectContaining({ rule: "off-policy-action", outcome: "revoked" }),
    ]);
    expect((await tasks.get(task.taskId))?.status).toBe("revoked");
    expect(sfn).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 1);
    expect(sfn).toHaveReceivedCommandWith(SendTaskSuccessCommand, {
      taskToken: "lifecycle-task-token",
      output: JSON.stringify({ outcome: "revoked" }),
    });
    expect(events).toHaveReceivedCommandWith(PutEventsCommand, {
      Entries: [
        expect.objectContaining({
          Source: "jitv",
          DetailType: "Task drift detected",
          EventBusName: "jitv-security",
        }),
      ],
    });
    expect(auditEvents(logs.json())).toContainEqual(
      expect.objectContaining({ event: "task.revoked", taskId: task.taskId, revokedBy: "jitv:drift" }),
    );
    // Nothing secret in what it logged.
    expect(logs.raw.join("")).not.toContain("lifecycle-task-token");

    // EventBridge delivers at least once: a redelivery changes nothing.
    expect(await handler(event)).toEqual({ handled: 0, duplicates: 1, ignored: 0, findings: [] });
    expect(sfn).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 1);
  });

  it("leaves a task alone while it reads what it may", async () => {
    const task = await activeTask();
    expect(await handler(delivered(task.taskId, "s3-get-object"))).toEqual({
      handled: 1,
      duplicates: 0,
      ignored: 0,
      findings: [],
    });
    expect((await tasks.get(task.taskId))?.status).toBe("active");
    expect(sfn).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 0);
    expect(events).toHaveReceivedCommandTimes(PutEventsCommand, 0);
  });
});

describe("the function's IAM role (cdk synth)", () => {
  it("allows every AWS call the handler made in the tests above", async () => {
    const actions = new Set(recorder.calls().map((call) => call.action));
    expect(actions).toContain("states:SendTaskSuccess");
    expect(actions).toContain("events:PutEvents");
    expect(await callsNotAllowed(recorder.calls())).toEqual([]);
  });
});
