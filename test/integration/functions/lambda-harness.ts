/**
 * What the tests of `functions/*.ts` share: AWS-shaped event fixtures with placeholders, a
 * Lambda context, the environment a function reads at cold start, and the log lines it writes
 * (Powertools JSON, audit events, EMF metrics) captured from stdout and stderr.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { RotateSecretCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { Context } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { inject, vi } from "vitest";
import { newTaskId } from "../../../lib/domain/ids.js";
import type { Task } from "../../../lib/domain/task.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import type { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import type { DynamoTemplateStore } from "../../../lib/tasks/dynamo-template-store.js";
import { LIFECYCLE_ASL_PATH } from "../../../lib/tasks/lifecycle.js";
import { makeTask } from "../tasks/fixtures.js";

const FIXTURES = new URL("../../fixtures/aws-events/", import.meta.url);
const PLACEHOLDER = /<[A-Za-z][A-Za-z-]*>/g;

/**
 * Reads `test/fixtures/aws-events/<name>` and replaces each `<key>` with `values[key]`
 * (JSON-escaped). A placeholder left without a value fails the test, so a fixture never
 * reaches a handler half-filled.
 */
export function loadEvent<T>(name: string, values: Readonly<Record<string, string>> = {}): T {
  let text = readFileSync(new URL(name, FIXTURES), "utf8");
  for (const [key, value] of Object.entries(values)) {
    text = text.replaceAll(`<${key}>`, JSON.stringify(value).slice(1, -1));
  }
  const left = text.match(PLACEHOLDER);
  if (left) throw new Error(`fixture ${name}: no value for ${[...new Set(left)].join(", ")}`);
  return JSON.parse(text) as T;
}

/** A Lambda context as the Node.js runtime passes it (30 s left, like a fresh invocation). */
export function lambdaContext(functionName: string): Context {
  const fail = () => {
    throw new Error("the Node.js 20 runtime has no callback context methods for async handlers");
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: "512",
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: "2025/04/09/[$LATEST]4f1c2e3d5a6b7c8d9e0f1a2b3c4d5e6f",
    getRemainingTimeInMillis: () => 30_000,
    done: fail,
    fail,
    succeed: fail,
  };
}

/**
 * Sets the environment a deployed function sees, and returns what restores the previous one.
 * The DynamoDB client goes to DynamoDB Local through the SDK's service-specific endpoint
 * variable; every other AWS endpoint points at a closed local port, so a client the test
 * forgot to mock fails at once instead of reaching AWS.
 */
export function setLambdaEnvironment(vars: Readonly<Record<string, string>>): () => void {
  const wanted: Record<string, string | undefined> = {
    AWS_REGION: "us-east-1",
    AWS_DEFAULT_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "AKIAJITVLOCALTEST000",
    AWS_SECRET_ACCESS_KEY: "jitv-local-test-secret-key",
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_ENDPOINT_URL: "http://127.0.0.1:9",
    AWS_ENDPOINT_URL_DYNAMODB: inject("dynamodbEndpoint"),
    // As the stack sets them for a single-account deployment (the test roles are in 123456789012).
    JITV_ACCOUNT_ID: "123456789012",
    JITV_TARGET_ACCOUNTS: "123456789012",
    ...vars,
  };
  const saved = Object.fromEntries(Object.keys(wanted).map((name) => [name, process.env[name]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(wanted);
  return () => apply(saved);
}

/** One JSON log line a function wrote to stdout (Powertools logger or EMF). */
// biome-ignore lint/suspicious/noExplicitAny: log lines are asserted field by field
export type LogLine = Record<string, any>;

/**
 * Captures what the functions write to stdout and stderr (CloudWatch Logs in AWS; Powertools
 * writes errors to stderr): the returned arrays fill as they log. Restored by
 * `vi.restoreAllMocks()`.
 */
export function captureLogs(): { readonly raw: string[]; json(): LogLine[] } {
  const raw: string[] = [];
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
      raw.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
      return true;
    });
  }
  return {
    raw,
    json: () =>
      raw
        .join("")
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as LogLine),
  };
}

/** The audit events among log lines (`"message": "audit"`). */
export function auditEvents(lines: readonly LogLine[]): LogLine[] {
  return lines.filter((line) => line.message === "audit").map((line) => line.audit as LogLine);
}

/** The names of the EMF metrics among log lines, one per count. */
export function emfMetricNames(lines: readonly LogLine[]): string[] {
  return lines.flatMap((line) =>
    (line._aws?.CloudWatchMetrics ?? []).flatMap((m: { Metrics: { Name: string }[] }) =>
      m.Metrics.map((metric) => metric.Name),
    ),
  );
}

/**
 * The keys of the `Payload` a Lambda state of the lifecycle ASL sends its function (the
 * state's `Parameters.Payload`, `.$` suffixes dropped): the shape of that function's event.
 */
export function aslPayloadKeys(state: string): string[] {
  const asl = JSON.parse(readFileSync(LIFECYCLE_ASL_PATH, "utf8")) as {
    States: Record<string, { Parameters?: { Payload?: Record<string, unknown> } }>;
  };
  const payload = asl.States[state]?.Parameters?.Payload;
  if (payload === undefined) throw new Error(`ASL state ${state} has no Parameters.Payload`);
  return Object.keys(payload)
    .map((key) => key.replace(/\.\$$/, ""))
    .sort();
}

/**
 * IAM and Secrets Manager mocked as revocation and rotation meet them: a target role with no
 * inline or overflow policy of its own, writes accepted, every rotation started. `reset()` (in
 * `beforeEach`) restores exactly that; a test narrows it with `.on(…)` after.
 */
export function revocationServiceMocks() {
  const iam = mockClient(IAMClient);
  const secretsManager = mockClient(SecretsManagerClient);
  return {
    iam,
    secretsManager,
    reset() {
      iam.reset();
      secretsManager.reset();
      iam.on(ListRolePoliciesCommand).resolves({ PolicyNames: [], IsTruncated: false });
      iam.on(ListAttachedRolePoliciesCommand).resolves({ AttachedPolicies: [], IsTruncated: false });
      iam.on(GetRolePolicyCommand).rejects(
        Object.assign(new Error("The role policy cannot be found."), {
          name: "NoSuchEntity",
          $metadata: { httpStatusCode: 404 },
        }),
      );
      iam.on(PutRolePolicyCommand).resolves({});
      iam.on(DeleteRolePolicyCommand).resolves({});
      secretsManager
        .on(RotateSecretCommand)
        .callsFake((input: { SecretId: string }) => ({ ARN: input.SecretId }));
    },
  };
}

/** The revocation policy IAM must receive for exactly these tasks (CONTRACT.md section 6). */
export function revocationDocument(...taskIds: string[]): string {
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "JitvRevokedTasks",
        Effect: "Deny",
        Action: "*",
        Resource: "*",
        Condition: { StringEquals: { "aws:PrincipalTag/jitv:task": taskIds } },
      },
    ],
  });
}

let seededRoles = 0;

/**
 * A task on a template and target role of its own (so each revocation policy holds exactly one
 * task), written with its TTL lease as the vend path writes it.
 */
export async function seedTask(
  stores: { readonly templates: DynamoTemplateStore; readonly tasks: DynamoTaskRepository },
  secrets: readonly { readonly arn: string; readonly rotateOnEnd?: boolean }[],
  overrides: Partial<Task> = {},
): Promise<Task & { roleName: string }> {
  seededRoles += 1;
  const roleName = `reports-reader-${randomUUID().slice(0, 8)}-${seededRoles}`;
  const roleArn = `arn:aws:iam::123456789012:role/jitv/${roleName}`;
  const template = `reports-read-${seededRoles}-${roleName.slice(15, 23)}`;
  await stores.templates.put(
    parseTemplate({
      name: template,
      zone: "workforce",
      roleArn,
      sessionPolicy: {
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::reports/*" }],
      },
      secrets,
    }),
  );
  const task = makeTask({ taskId: newTaskId(), template, roleArn, issuedCount: 1, ...overrides });
  await stores.tasks.create(task);
  return { ...task, roleName };
}
