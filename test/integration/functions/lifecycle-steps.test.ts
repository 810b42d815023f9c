import {
  GetRolePolicyCommand,
  IAMClient,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { RotateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SendTaskSuccessCommand, SFNClient } from "@aws-sdk/client-sfn";
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import type { Context } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { newTaskId } from "../../../lib/domain/ids.js";
import type { Task } from "../../../lib/domain/task.js";
import { pruneLeaseKey, revocationKey, toEpochSeconds } from "../../../lib/store/table.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../../../lib/tasks/dynamo-template-store.js";
import { recordAwsCalls } from "../../support/aws-calls.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { callsNotAllowed } from "../../support/function-roles.js";
import {
  aslPayloadKeys,
  auditEvents,
  captureLogs,
  emfMetricNames,
  lambdaContext,
  loadEvent,
  revocationDocument,
  seedTask as seedTaskOn,
  setLambdaEnvironment,
} from "./lambda-harness.js";

// The lifecycle state machine's Lambdas (functions/register-task-token.ts … lifecycle-failed.ts)
// through their real exported handlers, invoked with the payloads the ASL's Lambda states send
// (infra/state-machines/task-lifecycle.asl.json), on DynamoDB Local; IAM, Secrets Manager and
// Step Functions mocked at the SDK boundary.

const iam = mockClient(IAMClient);
const secretsManager = mockClient(SecretsManagerClient);
const sfn = mockClient(SFNClient);
const recorder = recordAwsCalls(iam, secretsManager, sfn);

/** A Lambda handler of functions/, whatever event type it declares. */
type AnyHandler = (event: never, context: Context) => Promise<unknown>;
/** Each lifecycle function's handler file (`functions/<file>.ts`), by the name the tests use. */
const ENTRIES = {
  registerTaskToken: "register-task-token",
  registerApprovalToken: "register-approval-token",
  approvalRefused: "approval-refused",
  revokeTask: "revoke-task",
  rotateTaskSecrets: "rotate-task-secrets",
  closeTask: "close-task",
  lifecycleFailed: "lifecycle-failed",
} as const;
const handlers = {} as Record<keyof typeof ENTRIES, AnyHandler>;

const SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jitv/reports-db-AbCdEf";
const KEPT_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jitv/reports-ro-GhIjKl";
/** Another inline policy the target role already has (the revocation policy shares IAM's quota with it). */
const ROLE_OWN_POLICY =
  '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}';

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
  for (const [name, file] of Object.entries(ENTRIES) as [keyof typeof ENTRIES, string][]) {
    const { handler } = (await import(`../../../functions/${file}.ts`)) as { handler: AnyHandler };
    handlers[name] = recorder.attribute(`functions/${file}.ts`, handler);
  }
});

afterAll(() => {
  recorder.restore();
  vi.restoreAllMocks();
  restoreEnv?.();
});

beforeEach(() => {
  iam.reset();
  secretsManager.reset();
  sfn.reset();
  iam.on(ListRolePoliciesCommand).resolves({ PolicyNames: ["reports-read-access"], IsTruncated: false });
  // No revocation overflow policies attached: the whole list fits the inline policy.
  iam.on(ListAttachedRolePoliciesCommand).resolves({ AttachedPolicies: [], IsTruncated: false });
  iam.on(GetRolePolicyCommand).rejects(
    Object.assign(new Error("The role policy cannot be found."), {
      name: "NoSuchEntity",
      $metadata: { httpStatusCode: 404 },
    }),
  );
  iam
    .on(GetRolePolicyCommand, { PolicyName: "reports-read-access" })
    .callsFake((input: { RoleName: string }) => ({
      RoleName: input.RoleName,
      PolicyName: "reports-read-access",
      PolicyDocument: encodeURIComponent(ROLE_OWN_POLICY),
    }));
  iam.on(PutRolePolicyCommand).resolves({});
  secretsManager.on(RotateSecretCommand).callsFake((input: { SecretId: string }) => ({
    ARN: input.SecretId,
    Name: "jitv/reports-db",
    VersionId: "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b",
  }));
  sfn.on(SendTaskSuccessCommand).resolves({});
  logs = captureLogs();
});

/** A task on a template and role of its own, its credentials still live for 10 minutes. */
function seedTask(overrides: Partial<Task> = {}): Promise<Task & { roleName: string }> {
  return seedTaskOn(
    { templates, tasks },
    [{ arn: SECRET_ARN }, { arn: KEPT_SECRET_ARN, rotateOnEnd: false }],
    {
      lastCredentialExpiry: new Date(Date.now() + 10 * 60_000).toISOString(),
      ...overrides,
    },
  );
}

function invoke(handler: AnyHandler, event: unknown, functionName: string) {
  return handler(event as never, lambdaContext(functionName));
}

describe("the event fixtures", () => {
  it.each([
    ["sfn-wait-for-task-end.json", "WaitForTaskEnd"],
    ["sfn-wait-for-approval.json", "WaitForApproval"],
    ["sfn-approval-refused.json", "ApprovalRefused"],
    ["sfn-revoke.json", "Revoke"],
    ["sfn-rotate-secrets.json", "RotateSecrets"],
    ["sfn-close-task.json", "CloseTask"],
    ["sfn-lifecycle-failed.json", "LifecycleFailed"],
  ])("%s has exactly the Payload fields the ASL state %s sends", (fixture, state) => {
    const event = loadEvent<Record<string, unknown>>(fixture, { taskId: "tsk_x" });
    expect(Object.keys(event).sort()).toEqual(aslPayloadKeys(state));
  });
});

describe("register-task-token (WaitForTaskEnd)", () => {
  it("stores the execution's task token on the task and answers nothing while the task is active", async () => {
    const task = await seedTask();
    const event = loadEvent<{ taskToken: string }>("sfn-wait-for-task-end.json", { taskId: task.taskId });
    await expect(invoke(handlers.registerTaskToken, event, "jitv-register-task-token")).resolves.toEqual({});
    expect((await tasks.get(task.taskId))?.taskToken).toBe(event.taskToken);
    expect(sfn).not.toHaveReceivedAnyCommand();
    // A task token is a capability: never logged.
    expect(logs.raw.join("")).not.toContain(event.taskToken);
  });

  it("sends the outcome back at once when the task ended before the token arrived", async () => {
    const task = await seedTask();
    await tasks.transition(task.taskId, ["active"], "completed");
    const event = loadEvent<{ taskToken: string }>("sfn-wait-for-task-end.json", { taskId: task.taskId });
    await invoke(handlers.registerTaskToken, event, "jitv-register-task-token");
    const expected = { taskToken: event.taskToken, output: '{"outcome":"completed"}' };
    expect(sfn).toHaveReceivedCommandExactlyOnceWith(SendTaskSuccessCommand, expected);
    expect(sfn.commandCalls(SendTaskSuccessCommand)[0]?.args[0].input).toStrictEqual(expected);
    expect((await tasks.get(task.taskId))?.taskToken).toBe(event.taskToken);
  });

  it("fails (for Step Functions to catch) when the task does not exist", async () => {
    const event = loadEvent("sfn-wait-for-task-end.json", { taskId: newTaskId() });
    await expect(invoke(handlers.registerTaskToken, event, "jitv-register-task-token")).rejects.toMatchObject(
      {
        name: "NotFoundError",
      },
    );
    expect(sfn).not.toHaveReceivedAnyCommand();
  });
});

describe("register-approval-token (WaitForApproval)", () => {
  it("stores the approval token on a pending task", async () => {
    const task = await seedTask({ status: "pending_approval" });
    const event = loadEvent<{ taskToken: string }>("sfn-wait-for-approval.json", { taskId: task.taskId });
    await expect(
      invoke(handlers.registerApprovalToken, event, "jitv-register-approval-token"),
    ).resolves.toEqual({});
    const stored = await tasks.get(task.taskId);
    expect(stored?.approvalToken).toBe(event.taskToken);
    expect(stored?.taskToken).toBeUndefined();
    expect(sfn).not.toHaveReceivedAnyCommand();
  });

  it("answers denied at once when the approvers refused before the token arrived", async () => {
    const task = await seedTask({ status: "pending_approval" });
    await tasks.transition(task.taskId, ["pending_approval"], "denied", "approval refused");
    const event = loadEvent<{ taskToken: string }>("sfn-wait-for-approval.json", { taskId: task.taskId });
    await invoke(handlers.registerApprovalToken, event, "jitv-register-approval-token");
    const expected = { taskToken: event.taskToken, output: '{"decision":"denied"}' };
    expect(sfn).toHaveReceivedCommandExactlyOnceWith(SendTaskSuccessCommand, expected);
    expect(sfn.commandCalls(SendTaskSuccessCommand)[0]?.args[0].input).toStrictEqual(expected);
  });
});

describe("approval-refused (ApprovalRefused)", () => {
  it("marks a pending task denied with the timeout as reason, and audits it", async () => {
    const task = await seedTask({ status: "pending_approval" });
    const event = loadEvent("sfn-approval-refused.json", { taskId: task.taskId });
    await invoke(handlers.approvalRefused, event, "jitv-approval-refused");
    expect(await tasks.get(task.taskId)).toMatchObject({
      status: "denied",
      reason: "approval timed out",
    });
    expect(auditEvents(logs.json())).toEqual([
      expect.objectContaining({ event: "task.denied", taskId: task.taskId, reason: "approval timed out" }),
    ]);
    expect(iam).not.toHaveReceivedAnyCommand();
  });
});

describe("revoke-task (Revoke)", () => {
  it("ends an active task whose deadline passed and writes exactly its deny policy on the target role", async () => {
    const task = await seedTask();
    const event = loadEvent("sfn-revoke.json", { taskId: task.taskId });
    expect(event).toEqual({ taskId: task.taskId, outcome: "expired" });
    await expect(invoke(handlers.revokeTask, event, "jitv-revoke-task")).resolves.toEqual({});

    const expected = {
      RoleName: task.roleName,
      PolicyName: "jitv-revoked-tasks",
      PolicyDocument: revocationDocument(task.taskId),
    };
    expect(iam).toHaveReceivedCommandExactlyOnceWith(PutRolePolicyCommand, expected);
    expect(iam.commandCalls(PutRolePolicyCommand)[0]?.args[0].input).toStrictEqual(expected);
    expect(await tasks.get(task.taskId)).toMatchObject({
      status: "expired",
      revokedAt: expect.any(String),
      endedAt: expect.any(String),
    });
    // The entry is pruned through the TTL stream 5 minutes after the last credential expires.
    const lease = await table.doc.send(
      new GetCommand({ TableName: table.tableName, Key: pruneLeaseKey(task.roleArn, task.taskId) }),
    );
    expect(lease.Item).toMatchObject({
      type: "lease",
      leaseKind: "prune",
      taskId: task.taskId,
      roleArn: task.roleArn,
      ttlEpoch: toEpochSeconds(task.lastCredentialExpiry ?? "") + 300,
    });
    expect(auditEvents(logs.json()).map((e) => e.event)).toEqual(["task.expired"]);
  });

  it("denies the sessions of a task an admin revoked, keeping its status", async () => {
    const task = await seedTask();
    await tasks.transition(task.taskId, ["active"], "revoked", "leaked in a log");
    const event = { ...loadEvent<object>("sfn-revoke.json", { taskId: task.taskId }), outcome: "revoked" };
    await invoke(handlers.revokeTask, event, "jitv-revoke-task");
    expect(iam).toHaveReceivedCommandExactlyOnceWith(PutRolePolicyCommand, {
      RoleName: task.roleName,
      PolicyName: "jitv-revoked-tasks",
      PolicyDocument: revocationDocument(task.taskId),
    });
    expect(await tasks.get(task.taskId)).toMatchObject({
      status: "revoked",
      reason: "leaked in a log",
      revokedAt: expect.any(String),
    });
    const entry = await table.doc.send(
      new GetCommand({ TableName: table.tableName, Key: revocationKey(task.roleArn, task.taskId) }),
    );
    expect(entry.Item).toMatchObject({ taskId: task.taskId, credentialsExpireAt: task.lastCredentialExpiry });
  });

  it("fails, recording no revocation on the task, when IAM refuses; the error names no policy document", async () => {
    const task = await seedTask();
    iam.on(PutRolePolicyCommand).rejects(
      Object.assign(new Error("User: arn:aws:sts::123456789012:assumed-role/jitv-revoke is not authorized"), {
        name: "AccessDenied",
        $metadata: { httpStatusCode: 403 },
      }),
    );
    const event = loadEvent("sfn-revoke.json", { taskId: task.taskId });
    const failure = await invoke(handlers.revokeTask, event, "jitv-revoke-task").then(
      () => undefined,
      (error: Error) => error,
    );
    expect(failure).toBeInstanceOf(Error);
    expect(failure?.name).toBe("UpstreamUnavailableError");
    expect(failure?.message).toContain(task.roleName);
    expect(failure?.message).not.toContain("JitvRevokedTasks");
    expect(iam).toHaveReceivedCommandTimes(PutRolePolicyCommand, 1);
    expect((await tasks.get(task.taskId))?.revokedAt).toBeUndefined();
  });
});

describe("rotate-task-secrets (RotateSecrets)", () => {
  it("rotates the template's rotateOnEnd secrets once per task", async () => {
    const task = await seedTask({ status: "completed" });
    const event = loadEvent("sfn-rotate-secrets.json", { taskId: task.taskId });
    await invoke(handlers.rotateTaskSecrets, event, "jitv-rotate-task-secrets");
    const expected = { SecretId: SECRET_ARN, RotateImmediately: true };
    expect(secretsManager).toHaveReceivedCommandExactlyOnceWith(RotateSecretCommand, expected);
    expect(secretsManager.commandCalls(RotateSecretCommand)[0]?.args[0].input).toStrictEqual(expected);
    const rotatedAt = (await tasks.get(task.taskId))?.secretsRotatedAt;
    expect(rotatedAt).toEqual(expect.any(String));
    expect(auditEvents(logs.json())).toEqual([
      expect.objectContaining({ event: "secret.rotated", taskId: task.taskId, secret: SECRET_ARN }),
    ]);

    await invoke(handlers.rotateTaskSecrets, event, "jitv-rotate-task-secrets");
    expect(secretsManager).toHaveReceivedCommandTimes(RotateSecretCommand, 1);
    expect((await tasks.get(task.taskId))?.secretsRotatedAt).toBe(rotatedAt);
  });

  it("skips a secret that no longer exists, saying so in audit", async () => {
    const task = await seedTask({ status: "completed" });
    secretsManager.on(RotateSecretCommand).rejects(
      Object.assign(new Error("Secrets Manager can't find the specified secret."), {
        name: "ResourceNotFoundException",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    await invoke(
      handlers.rotateTaskSecrets,
      loadEvent("sfn-rotate-secrets.json", { taskId: task.taskId }),
      "jitv-rotate-task-secrets",
    );
    expect(auditEvents(logs.json())).toEqual([
      expect.objectContaining({
        event: "secret.rotation_skipped",
        secret: SECRET_ARN,
        reason: "secret not found",
      }),
    ]);
    expect((await tasks.get(task.taskId))?.secretsRotatedAt).toEqual(expect.any(String));
  });
});

describe("close-task (CloseTask)", () => {
  it("records that the lifecycle is done with the task, once", async () => {
    const task = await seedTask({ status: "completed" });
    const event = loadEvent("sfn-close-task.json", { taskId: task.taskId });
    await expect(invoke(handlers.closeTask, event, "jitv-close-task")).resolves.toEqual({});
    const closedAt = (await tasks.get(task.taskId))?.closedAt;
    expect(closedAt).toEqual(expect.any(String));
    await invoke(handlers.closeTask, event, "jitv-close-task");
    expect((await tasks.get(task.taskId))?.closedAt).toBe(closedAt);
    expect(auditEvents(logs.json())).toEqual([
      expect.objectContaining({ event: "task.closed", taskId: task.taskId, template: task.template }),
    ]);
    expect(iam).not.toHaveReceivedAnyCommand();
  });
});

describe("lifecycle-failed (LifecycleFailed)", () => {
  it("marks the task revocation_failed with the step's error, audits it and emits the RevocationFailed metric", async () => {
    const task = await seedTask({ status: "completed" });
    const event = loadEvent("sfn-lifecycle-failed.json", { taskId: task.taskId });
    await invoke(handlers.lifecycleFailed, event, "jitv-lifecycle-failed");
    expect(await tasks.get(task.taskId)).toMatchObject({
      status: "revocation_failed",
      reason: "lifecycle step failed after retries: UpstreamUnavailableError",
    });
    const lines = logs.json();
    expect(emfMetricNames(lines)).toEqual(["RevocationFailed"]);
    expect(lines.find((line) => line.RevocationFailed !== undefined)).toMatchObject({
      service: "jitv",
      RevocationFailed: 1,
    });
    expect(auditEvents(lines).map((e) => e.event)).toEqual(["task.revocation_failed"]);
  });
});

describe("each function's IAM role (cdk synth)", () => {
  it("allows every AWS call its handler made in the tests above, and each handler made some", async () => {
    const entries = new Set(recorder.calls().map((call) => call.entry));
    expect([...entries].sort()).toEqual(
      Object.values(ENTRIES)
        .map((file) => `functions/${file}.ts`)
        .sort(),
    );
    expect(await callsNotAllowed(recorder.calls())).toEqual([]);
    // The check itself can fail: a call outside a role (close-task writes no IAM) is named.
    const stray = { entry: "functions/close-task.ts", action: "iam:PutRolePolicy", input: {} };
    expect(await callsNotAllowed([stray])).toEqual(["functions/close-task.ts: iam:PutRolePolicy"]);
    // …and so is a call mapped to an action IAM does not have (transactions have none of their own).
    const unknown = { entry: "functions/close-task.ts", action: "dynamodb:TransactWriteItems", input: {} };
    expect(await callsNotAllowed([{ ...unknown, action: "dynamodb:TransactItems" }])).toEqual([
      "functions/close-task.ts: dynamodb:TransactItems (no such IAM action)",
    ]);
  });
});
