import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { DeleteRolePolicyCommand, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import { RotateSecretCommand } from "@aws-sdk/client-secrets-manager";
import { SFNClient } from "@aws-sdk/client-sfn";
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import type { DynamoDBStreamEvent } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { Task } from "../../../lib/domain/task.js";
import {
  leaseKey,
  pruneLeaseItem,
  pruneLeaseKey,
  revocationKey,
  toEpochSeconds,
} from "../../../lib/store/table.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../../../lib/tasks/dynamo-template-store.js";
import { recordAwsCalls } from "../../support/aws-calls.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { callsNotAllowed } from "../../support/function-roles.js";
import {
  auditEvents,
  captureLogs,
  emfMetricNames,
  lambdaContext,
  loadEvent,
  revocationDocument,
  revocationServiceMocks,
  seedTask as seedTaskOn,
  setLambdaEnvironment,
} from "./lambda-harness.js";

// functions/ttl-stream.ts (the TTL backstop) through its real exported handler, fed DynamoDB
// stream events in the Lambda event shape (marshalled images, the TTL service's userIdentity),
// on DynamoDB Local; IAM, Secrets Manager and Step Functions mocked at the SDK boundary.
// Nothing waits for DynamoDB's TTL: the records are what its deletions produce.

const { iam, secretsManager, reset: resetRevocationServices } = revocationServiceMocks();
const sfn = mockClient(SFNClient);
const recorder = recordAwsCalls(iam, secretsManager, sfn);

const SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jitv/reports-db-AbCdEf";

type StreamResult = { batchItemFailures: { itemIdentifier: string }[] };
let handler: (event: DynamoDBStreamEvent) => Promise<StreamResult>;
type TtlStreamHandler = typeof import("../../../functions/ttl-stream.js")["handler"];
let table: TestTable;
let tasks: DynamoTaskRepository;
let templates: DynamoTemplateStore;
let restoreEnv: () => void;
let logs: ReturnType<typeof captureLogs>;

beforeAll(async () => {
  table = await createTestTable();
  tasks = new DynamoTaskRepository({ client: table.doc, tableName: table.tableName });
  templates = new DynamoTemplateStore({ client: table.doc, tableName: table.tableName });
  restoreEnv = setLambdaEnvironment({ JITV_TABLE_NAME: table.tableName });
  vi.resetModules();
  const streamHandler: TtlStreamHandler = recorder.attribute(
    "functions/ttl-stream.ts",
    (await import("../../../functions/ttl-stream.js")).handler,
  );
  handler = (event) => streamHandler(event, lambdaContext("jitv-ttl-stream"));
});

afterAll(() => {
  recorder.restore();
  vi.restoreAllMocks();
  restoreEnv?.();
});

beforeEach(() => {
  resetRevocationServices();
  sfn.reset();
  logs = captureLogs();
});

/** A task (with its TTL lease) on a template and target role of its own. */
function seedTask(overrides: Partial<Task> = {}): Promise<Task & { roleName: string }> {
  return seedTaskOn({ templates, tasks }, [{ arn: SECRET_ARN }], overrides);
}

/** An active task whose deadline (and last credential) passed `minutesAgo` minutes ago. */
function expired(minutesAgo: number): Partial<Task> {
  const now = Date.now();
  const end = new Date(now - minutesAgo * 60_000).toISOString();
  return {
    createdAt: new Date(now - (minutesAgo + 15) * 60_000).toISOString(),
    expiresAt: end,
    lastCredentialExpiry: end,
  };
}

/** The stream event DynamoDB's TTL deletion of the task's lease produces. */
function ttlRemoveOf(task: Task, fixture = "ddb-stream-task-lease-ttl-remove.json"): DynamoDBStreamEvent {
  return loadEvent<DynamoDBStreamEvent>(fixture, {
    taskId: task.taskId,
    ttlEpoch: String(toEpochSeconds(task.expiresAt)),
  });
}

describe("the stream fixtures", () => {
  it("carry, as OldImage, the task lease exactly as the table stores it (marshalled)", async () => {
    const task = await seedTask();
    const stored = await table.client.send(
      new GetItemCommand({
        TableName: table.tableName,
        Key: marshall(leaseKey(task.taskId)),
        ConsistentRead: true,
      }),
    );
    for (const fixture of [
      "ddb-stream-task-lease-ttl-remove.json",
      "ddb-stream-task-lease-user-remove.json",
    ]) {
      const record = ttlRemoveOf(task, fixture).Records[0];
      expect(record?.dynamodb?.OldImage).toEqual(stored.Item);
      expect(record?.dynamodb?.Keys).toEqual(marshall(leaseKey(task.taskId)));
    }
  });
});

describe("a task lease deleted by DynamoDB's TTL", () => {
  it("ends, revokes, rotates and closes the task the state machine left active", async () => {
    const task = await seedTask(expired(2));
    const result = await handler(ttlRemoveOf(task));

    expect(result).toEqual({ batchItemFailures: [] });
    const expected = {
      RoleName: task.roleName,
      PolicyName: "jitv-revoked-tasks",
      PolicyDocument: revocationDocument(task.taskId),
    };
    expect(iam).toHaveReceivedCommandExactlyOnceWith(PutRolePolicyCommand, expected);
    expect(iam.commandCalls(PutRolePolicyCommand)[0]?.args[0].input).toStrictEqual(expected);
    expect(secretsManager).toHaveReceivedCommandExactlyOnceWith(RotateSecretCommand, {
      SecretId: SECRET_ARN,
      RotateImmediately: true,
    });
    expect(await tasks.get(task.taskId)).toMatchObject({
      status: "expired",
      endedAt: expect.any(String),
      revokedAt: expect.any(String),
      secretsRotatedAt: expect.any(String),
      closedAt: expect.any(String),
    });
    const lines = logs.json();
    expect(emfMetricNames(lines)).toEqual(["TaskExpiredByBackstop"]);
    expect(auditEvents(lines).map((e) => e.event)).toEqual(["task.expired", "secret.rotated", "task.closed"]);
    expect(sfn).not.toHaveReceivedAnyCommand();
  });

  it("does nothing more for a task the state machine already closed", async () => {
    const task = await seedTask({ status: "completed" });
    await tasks.mark(task.taskId, {
      revokedAt: new Date().toISOString(),
      secretsRotatedAt: new Date().toISOString(),
      closedAt: new Date().toISOString(),
    });
    const before = await tasks.get(task.taskId);
    expect(await handler(ttlRemoveOf(task))).toEqual({ batchItemFailures: [] });
    expect(await tasks.get(task.taskId)).toEqual(before);
    expect(iam).not.toHaveReceivedAnyCommand();
    expect(secretsManager).not.toHaveReceivedAnyCommand();
    expect(emfMetricNames(logs.json())).toEqual([]);
  });

  it("reports the failed record and every later one for retry, handling none after it", async () => {
    const failing = await seedTask(expired(2));
    const later = await seedTask(expired(2));
    iam.on(PutRolePolicyCommand, { RoleName: failing.roleName }).rejects(
      Object.assign(new Error("not authorized"), {
        name: "AccessDenied",
        $metadata: { httpStatusCode: 403 },
      }),
    );
    const first = ttlRemoveOf(failing).Records[0];
    const second = ttlRemoveOf(later).Records[0];
    if (!first?.dynamodb || !second?.dynamodb) throw new Error("fixture has no record");
    const event: DynamoDBStreamEvent = {
      Records: [
        first,
        { ...second, dynamodb: { ...second.dynamodb, SequenceNumber: "4421584500000000017450439999" } },
      ],
    };

    expect(await handler(event)).toEqual({
      batchItemFailures: [
        { itemIdentifier: "4421584500000000017450439091" },
        { itemIdentifier: "4421584500000000017450439999" },
      ],
    });
    expect(await tasks.get(failing.taskId)).toMatchObject({ status: "expired" });
    expect((await tasks.get(failing.taskId))?.revokedAt).toBeUndefined();
    expect(await tasks.get(later.taskId)).toMatchObject({ status: "active" });
    expect(iam).not.toHaveReceivedCommandWith(PutRolePolicyCommand, { RoleName: later.roleName });
  });
});

describe("a task lease deleted by someone else (no TTL principal)", () => {
  it("is ignored: the live task keeps its status and no role is touched", async () => {
    const task = await seedTask();
    const before = await tasks.get(task.taskId);
    const event = ttlRemoveOf(task, "ddb-stream-task-lease-user-remove.json");
    expect(event.Records[0]?.eventName).toBe("REMOVE");
    expect(event.Records[0]?.userIdentity).toBeUndefined();

    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(await tasks.get(task.taskId)).toEqual(before);
    expect(iam).not.toHaveReceivedAnyCommand();
    expect(secretsManager).not.toHaveReceivedAnyCommand();
    expect(logs.json()).toEqual([]);
  });

  it("is ignored when another service principal deleted it", async () => {
    const task = await seedTask();
    const event = ttlRemoveOf(task);
    const record = event.Records[0];
    if (!record) throw new Error("fixture has no record");
    const other: DynamoDBStreamEvent = {
      Records: [{ ...record, userIdentity: { type: "Service", principalId: "backup.amazonaws.com" } }],
    };
    expect(await handler(other)).toEqual({ batchItemFailures: [] });
    expect(await tasks.get(task.taskId)).toMatchObject({ status: "active" });
    expect(iam).not.toHaveReceivedAnyCommand();
  });
});

describe("a prune lease deleted by DynamoDB's TTL", () => {
  it("removes the revocation entry once every credential of the task has expired", async () => {
    // Revoked by the backstop long after its last credential expired: the entry denies nothing live.
    const task = await seedTask(expired(10));
    expect(await handler(ttlRemoveOf(task))).toEqual({ batchItemFailures: [] });
    expect(iam).toHaveReceivedCommandExactlyOnceWith(DeleteRolePolicyCommand, {
      RoleName: task.roleName,
      PolicyName: "jitv-revoked-tasks",
    });
    const entryKey = revocationKey(task.roleArn, task.taskId);
    const entry = await table.doc.send(new GetCommand({ TableName: table.tableName, Key: entryKey }));
    expect(entry.Item).toMatchObject({ taskId: task.taskId });

    const event = loadEvent<DynamoDBStreamEvent>("ddb-stream-prune-lease-ttl-remove.json", {
      taskId: task.taskId,
      roleArn: task.roleArn,
      encodedRoleArn: encodeURIComponent(task.roleArn),
      ttlEpoch: String(toEpochSeconds(task.lastCredentialExpiry ?? "") + 300),
    });
    // The fixture's image is the prune lease the revocation store writes. (It is not read back:
    // it expired 5 minutes ago, and DynamoDB Local's own TTL sweep may already have deleted it.)
    expect(event.Records[0]?.dynamodb?.OldImage).toEqual(
      marshall(pruneLeaseItem(task.roleArn, task.taskId, task.lastCredentialExpiry ?? "")),
    );
    expect(event.Records[0]?.dynamodb?.Keys).toEqual(marshall(pruneLeaseKey(task.roleArn, task.taskId)));

    iam.resetHistory();
    expect(await handler(event)).toEqual({ batchItemFailures: [] });
    expect(
      (
        await table.doc.send(
          new GetCommand({ TableName: table.tableName, Key: entryKey, ConsistentRead: true }),
        )
      ).Item,
    ).toBeUndefined();
    expect(iam).toHaveReceivedCommandExactlyOnceWith(DeleteRolePolicyCommand, {
      RoleName: task.roleName,
      PolicyName: "jitv-revoked-tasks",
    });
    expect(iam).not.toHaveReceivedCommand(PutRolePolicyCommand);
    expect(auditEvents(logs.json()).at(-1)).toMatchObject({
      event: "revocation.pruned",
      taskId: task.taskId,
      roleArn: task.roleArn,
    });
  });
});

describe("the function's IAM role (cdk synth)", () => {
  it("allows every AWS call the handler made in the tests above", async () => {
    expect(new Set(recorder.calls().map((call) => call.action))).toContain("iam:PutRolePolicy");
    expect(await callsNotAllowed(recorder.calls())).toEqual([]);
  });
});
