import { PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { RotateSecretCommand } from "@aws-sdk/client-secrets-manager";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import "aws-sdk-client-mock-vitest/extend";
import type { Context, ScheduledEvent } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { Task } from "../../../lib/domain/task.js";
import { taskItem } from "../../../lib/store/table.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../../../lib/tasks/dynamo-template-store.js";
import { recordAwsCalls } from "../../support/aws-calls.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { callsNotAllowed } from "../../support/function-roles.js";
import {
  auditEvents,
  captureLogs,
  lambdaContext,
  loadEvent,
  revocationServiceMocks,
  seedTask as seedTaskOn,
  setLambdaEnvironment,
} from "./lambda-harness.js";

// functions/backstop-sweep.ts (the scheduled sweep behind the TTL backstop) through its real
// exported handler, fed the scheduled event EventBridge sends, on DynamoDB Local; IAM and
// Secrets Manager mocked at the SDK boundary.

const { iam, secretsManager, reset: resetRevocationServices } = revocationServiceMocks();
const recorder = recordAwsCalls(iam, secretsManager);
const SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jitv/reports-db-AbCdEf";

let table: TestTable;
let tasks: DynamoTaskRepository;
let templates: DynamoTemplateStore;
let restoreEnv: () => void;
let logs: ReturnType<typeof captureLogs>;
let handler: (event: ScheduledEvent, context: Context) => Promise<{ swept: number }>;

beforeAll(async () => {
  table = await createTestTable();
  tasks = new DynamoTaskRepository({ client: table.doc, tableName: table.tableName });
  templates = new DynamoTemplateStore({ client: table.doc, tableName: table.tableName });
  restoreEnv = setLambdaEnvironment({ JITV_TABLE_NAME: table.tableName });
  vi.resetModules();
  handler = recorder.attribute(
    "functions/backstop-sweep.ts",
    (await import("../../../functions/backstop-sweep.js")).handler,
  );
});

afterAll(() => {
  recorder.restore();
  vi.restoreAllMocks();
  restoreEnv?.();
});

beforeEach(() => {
  resetRevocationServices();
  logs = captureLogs();
});

const minutes = (n: number) => new Date(Date.now() + n * 60_000).toISOString();

/**
 * An active task (with its lease) whose deadline is `deadlineInMinutes` away (negative: passed).
 * Its last credential outlives the deadline, as STS's 15-minute minimum lets it: only a deny
 * policy stops it.
 */
function activeTask(deadlineInMinutes: number) {
  return seedTaskOn({ templates, tasks }, [{ arn: SECRET_ARN }], {
    createdAt: minutes(deadlineInMinutes - 15),
    expiresAt: minutes(deadlineInMinutes),
    lastCredentialExpiry: minutes(deadlineInMinutes + 15),
  });
}

/** A task that ended `endedMinutesAgo` minutes ago, its lifecycle not (or, `closed`, fully) done. */
async function endedTask(endedMinutesAgo: number, closed = false) {
  const task = await activeTask(-endedMinutesAgo + 5);
  const ended: Task = {
    ...task,
    status: "completed",
    endedAt: minutes(-endedMinutesAgo),
    // Issued for an hour (credentialMaxSeconds 3600) just before the end: still live.
    lastCredentialExpiry: minutes(60 - endedMinutesAgo),
    ...(closed
      ? {
          revokedAt: minutes(-endedMinutesAgo),
          secretsRotatedAt: minutes(-endedMinutesAgo),
          closedAt: minutes(-endedMinutesAgo),
        }
      : {}),
  };
  await table.doc.send(new PutCommand({ TableName: table.tableName, Item: taskItem(ended) }));
  return task;
}

function sweep() {
  return handler(
    loadEvent<ScheduledEvent>("eventbridge-scheduled.json", { time: minutes(0) }),
    lambdaContext("jitv-backstop-sweep"),
  );
}

/** The task ids in the revocation policies written to the role. */
function revokedOn(roleName: string): string[] {
  return iam
    .commandCalls(PutRolePolicyCommand, { RoleName: roleName })
    .flatMap(
      (call) =>
        JSON.parse(call.args[0].input.PolicyDocument ?? "{}").Statement?.[0]?.Condition?.StringEquals?.[
          "aws:PrincipalTag/jitv:task"
        ] ?? [],
    );
}

describe("the backstop sweep (scheduled)", () => {
  it("ends, revokes, rotates and closes what the lifecycle missed, and leaves everything else alone", async () => {
    const overdue = await activeTask(-10);
    const live = await activeTask(+10);
    const justPast = await activeTask(-0.5);
    const unclosed = await endedTask(30);
    const ending = await endedTask(1);
    const done = await endedTask(60, true);

    await expect(sweep()).resolves.toEqual({ swept: 2 });

    const stored = async (task: Task) => tasks.get(task.taskId);
    expect(await stored(overdue)).toMatchObject({
      status: "expired",
      revokedAt: expect.any(String),
      closedAt: expect.any(String),
    });
    // Ended by its agent: it keeps its status; the lifecycle's work is done now.
    expect(await stored(unclosed)).toMatchObject({
      status: "completed",
      revokedAt: expect.any(String),
      closedAt: expect.any(String),
    });
    for (const untouched of [live, justPast, ending]) {
      expect((await stored(untouched))?.closedAt).toBeUndefined();
      expect(revokedOn(untouched.roleName)).toEqual([]);
    }
    expect(revokedOn(overdue.roleName)).toEqual([overdue.taskId]);
    expect(revokedOn(unclosed.roleName)).toEqual([unclosed.taskId]);
    expect(revokedOn(done.roleName)).toEqual([]);
    expect(secretsManager).toHaveReceivedCommandTimes(RotateSecretCommand, 2);
    expect(
      auditEvents(logs.json())
        .filter((e) => e.event === "task.expired")
        .map((e) => e.taskId),
    ).toEqual([overdue.taskId]);

    // A second run finds nothing left to do.
    iam.resetHistory();
    await expect(sweep()).resolves.toEqual({ swept: 0 });
    expect(iam).not.toHaveReceivedCommand(PutRolePolicyCommand);
  });

  it("finishes the other tasks when one fails, fails the run naming it, and finishes it on the next run", async () => {
    const broken = await activeTask(-5);
    const fine = await activeTask(-5);
    iam
      .on(PutRolePolicyCommand, { RoleName: broken.roleName })
      .rejects(
        Object.assign(new Error("Rate exceeded"), { name: "Throttling", $metadata: { httpStatusCode: 400 } }),
      );

    await expect(sweep()).rejects.toThrow(`backstop sweep: 1 of 2 overdue tasks failed: ${broken.taskId}`);
    expect((await tasks.get(fine.taskId))?.closedAt).toEqual(expect.any(String));
    expect((await tasks.get(broken.taskId))?.closedAt).toBeUndefined();

    iam.on(PutRolePolicyCommand, { RoleName: broken.roleName }).resolves({});
    await expect(sweep()).resolves.toEqual({ swept: 1 });
    expect(await tasks.get(broken.taskId)).toMatchObject({ status: "expired", closedAt: expect.any(String) });
  });
});

describe("the function's IAM role (cdk synth)", () => {
  it("allows every AWS call the handler made in the tests above", async () => {
    const actions = new Set(recorder.calls().map((call) => call.action));
    expect(actions).toContain("iam:PutRolePolicy");
    expect(actions).toContain("dynamodb:Query");
    expect(await callsNotAllowed(recorder.calls())).toEqual([]);
  });
});
