import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { SendTaskSuccessCommand, SFNClient, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { AssumeRoleCommand, type AssumeRoleCommandInput, STSClient } from "@aws-sdk/client-sts";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { DynamoPolicyStore } from "../../../lib/authz/dynamo-policy-store.js";
import { lintTemplate } from "../../../lib/domain/render.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { templateKey } from "../../../lib/store/table.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../../../lib/tasks/dynamo-template-store.js";
import { recordAwsCalls } from "../../support/aws-calls.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { callsNotAllowed } from "../../support/function-roles.js";
import { startTestIssuer, type TestIssuer } from "../../support/test-issuer.js";
import {
  auditEvents,
  captureLogs,
  lambdaContext,
  loadEvent,
  setLambdaEnvironment,
} from "./lambda-harness.js";

// functions/api.ts through its real exported handler: API Gateway REST proxy events in AWS's
// own shape, the function's own cold-start wiring (environment, issuers file), DynamoDB Local,
// a real JWKS server; STS, Step Functions and EventBridge mocked at the SDK boundary.

const sts = mockClient(STSClient);
const sfn = mockClient(SFNClient);
const eventBridge = mockClient(EventBridgeClient);
const recorder = recordAwsCalls(sts, sfn, eventBridge);

const STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:jitv-task-lifecycle";
const EVENT_BUS = "jitv-approvals";
const ROLE_ARN = "arn:aws:iam::123456789012:role/jitv/reports-reader";
/** A GitHub-style subject: not a valid SourceIdentity as is. */
const AGENT = "repo:org/repo:ref:refs/heads/main";
/** What CONTRACT.md section 5 says STS gets for it (sanitised, with a hash of the original). */
const AGENT_SOURCE_IDENTITY = "repo-org-repo-ref-refs-heads-main-746a08af312cd7ed";
/** The purpose inside the base64 body of apigw-rest-post-tasks.json (UTF-8, not Latin-1). */
const FIXTURE_PURPOSE = "Résumé des rapports Q3 — ünïcödé ✓";
const RENDERED_POLICY =
  '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::reports/q3/*"]}]}';
const NETWORK_POLICY = `@id("vend-from-corp-network")
@reason("credentials are vended only to callers inside 10.0.0.0/8")
forbid (principal, action == Jitv::Action::"Vend", resource)
unless { context has sourceIp && context.sourceIp.isInRange(ip("10.0.0.0/8")) };`;

type ApiHandler = typeof import("../../../functions/api.js")["handler"];

let handler: ApiHandler;
let agents: TestIssuer;
let table: TestTable;
let dir: string;
let restoreEnv: () => void;
let logs: ReturnType<typeof captureLogs>;
/** The order the mocked AWS calls arrived in. */
let calls: string[];
/** How many credentials the mocked STS has issued in this file (each distinct). */
let issued = 0;

function templateOf(overrides: Record<string, unknown>) {
  const template = parseTemplate({
    name: "reports-read",
    zone: "workforce",
    roleArn: ROLE_ARN,
    sessionPolicy: {
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::reports/{{params.prefix}}/*"] },
      ],
    },
    parameters: { prefix: { pattern: "^[a-z0-9-]{1,32}$" } },
    agents: [{ issuer: agents.issuer, subjects: [AGENT] }],
    ttl: { defaultSeconds: 900, maxSeconds: 3600, credentialMaxSeconds: 1200 },
    ...overrides,
  });
  lintTemplate(template);
  return template;
}

beforeAll(async () => {
  [agents, table] = await Promise.all([startTestIssuer({ alg: "ES256" }), createTestTable()]);
  dir = mkdtempSync(join(tmpdir(), "jitv-api-fn-"));
  const issuersFile = join(dir, "issuers.json");
  writeFileSync(issuersFile, JSON.stringify({ issuers: [agents.profile({ name: "agents" })] }));

  const templates = new DynamoTemplateStore({ client: table.doc, tableName: table.tableName });
  await templates.put(templateOf({}));
  await templates.put(
    templateOf({ name: "reports-approved", approval: { required: true, quorum: 2, timeoutSeconds: 600 } }),
  );
  // Before the function's first request: its authorizer loads the policies on first use.
  await new DynamoPolicyStore({ client: table.doc, tableName: table.tableName }).put(
    "network",
    NETWORK_POLICY,
  );

  restoreEnv = setLambdaEnvironment({
    JITV_TABLE_NAME: table.tableName,
    JITV_ISSUERS_FILE: issuersFile,
    JITV_STATE_MACHINE_ARN: STATE_MACHINE_ARN,
    JITV_EVENT_BUS_NAME: EVENT_BUS,
  });
  vi.resetModules();
  handler = recorder.attribute("functions/api.ts", (await import("../../../functions/api.js")).handler);
});

afterAll(async () => {
  recorder.restore();
  vi.restoreAllMocks();
  restoreEnv?.();
  await agents?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  sts.reset();
  sfn.reset();
  eventBridge.reset();
  calls = [];
  sfn.on(StartExecutionCommand).callsFake((input: { name: string }) => {
    calls.push("StartExecution");
    return {
      executionArn: `${STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:")}:${input.name}`,
      startDate: new Date(),
    };
  });
  sts.on(AssumeRoleCommand).callsFake((input: AssumeRoleCommandInput) => {
    calls.push("AssumeRole");
    issued += 1;
    return {
      Credentials: {
        AccessKeyId: `ASIAJITVTEST${String(issued).padStart(8, "0")}`,
        SecretAccessKey: `wJalrXUtnFEMI/K7MDENG/bPxRfiCYJITV${issued}`,
        SessionToken: `FwoGZXIvYXdzEJITV//////////wEaDJITVSESSION${issued}`,
        Expiration: new Date(Date.now() + (input.DurationSeconds ?? 0) * 1000),
      },
      AssumedRoleUser: {
        AssumedRoleId: `AROAJITVTEST:${input.RoleSessionName}`,
        Arn: `arn:aws:sts::123456789012:assumed-role/reports-reader/${input.RoleSessionName}`,
      },
      SourceIdentity: input.SourceIdentity,
    };
  });
  eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "e-1" }] });
  logs = captureLogs();
});

/** The POST /v1/tasks fixture with a fresh agent token (its jti is single-use). */
async function postTasksEvent(
  options: { sub?: string; idempotencyKey?: string } = {},
): Promise<APIGatewayProxyEvent> {
  return loadEvent<APIGatewayProxyEvent>("apigw-rest-post-tasks.json", {
    "agent-token": await agents.sign({ sub: options.sub ?? AGENT }),
    "idempotency-key": options.idempotencyKey ?? `key-${randomUUID()}`,
  });
}

function withBody(
  event: APIGatewayProxyEvent,
  body: unknown,
  encoding: "base64" | "text",
): APIGatewayProxyEvent {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return {
    ...event,
    body: encoding === "base64" ? Buffer.from(text, "utf8").toString("base64") : text,
    isBase64Encoded: encoding === "base64",
  };
}

function fromIp(event: APIGatewayProxyEvent, sourceIp: string): APIGatewayProxyEvent {
  return {
    ...event,
    requestContext: { ...event.requestContext, identity: { ...event.requestContext.identity, sourceIp } },
  };
}

async function invoke(event: unknown): Promise<APIGatewayProxyResult> {
  return handler(event as APIGatewayProxyEvent, lambdaContext("jitv-api"));
}

// biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted field by field
function json(result: APIGatewayProxyResult): any {
  return JSON.parse(result.body);
}

function expectContractError(result: APIGatewayProxyResult, status: number, code: string, requestId: string) {
  expect(result.statusCode).toBe(status);
  expect(json(result)).toEqual({ error: { code, message: expect.any(String) } });
  expect(result.headers).toMatchObject({
    "content-type": "application/json",
    "cache-control": "no-store",
    "x-request-id": requestId,
  });
}

describe("POST /v1/tasks through the Lambda handler", () => {
  it("vends from a base64 body with odd-case headers: lifecycle started, then exactly the STS request of the contract", async () => {
    const event = await postTasksEvent({ idempotencyKey: "nightly-q3-1" });
    const result = await invoke(event);

    expect(result.statusCode).toBe(201);
    expect(result.headers).toEqual({
      "content-type": "application/json",
      "cache-control": "no-store",
      "x-request-id": event.requestContext.requestId,
    });
    const body = json(result);
    const taskId: string = body.taskId;
    expect(taskId).toMatch(/^tsk_[0-9a-hjkmnp-tv-z]{26}$/);
    expect(body).toEqual({
      taskId,
      status: "active",
      template: "reports-read",
      agent: { issuer: agents.issuer, id: AGENT },
      purpose: FIXTURE_PURPOSE,
      createdAt: expect.any(String),
      expiresAt: expect.any(String),
      credentials: {
        AccessKeyId: `ASIAJITVTEST${String(issued).padStart(8, "0")}`,
        SecretAccessKey: `wJalrXUtnFEMI/K7MDENG/bPxRfiCYJITV${issued}`,
        SessionToken: `FwoGZXIvYXdzEJITV//////////wEaDJITVSESSION${issued}`,
        Expiration: expect.any(String),
      },
    });
    // ttlSeconds 1800 from the decoded body; the credential is capped by credentialMaxSeconds.
    expect(Date.parse(body.expiresAt) - Date.parse(body.createdAt)).toBe(1_800_000);

    // CONTRACT.md section 6: durable record and lifecycle execution first, then STS.
    expect(calls).toEqual(["StartExecution", "AssumeRole"]);
    expect(sfn).toHaveReceivedCommandExactlyOnceWith(StartExecutionCommand, {
      stateMachineArn: STATE_MACHINE_ARN,
      name: taskId,
    });
    const started = JSON.parse(sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input.input ?? "{}");
    expect(started).toEqual({
      taskId,
      approvalRequired: false,
      timeoutSeconds: started.timeoutSeconds,
      approvalTimeoutSeconds: started.timeoutSeconds,
    });
    expect(started.timeoutSeconds).toBeLessThanOrEqual(1800);
    expect(started.timeoutSeconds).toBeGreaterThan(1700);

    // CONTRACT.md section 5, exactly: no other field (no TransitiveTagKeys, no ExternalId).
    const expected: AssumeRoleCommandInput = {
      RoleArn: ROLE_ARN,
      RoleSessionName: taskId,
      SourceIdentity: AGENT_SOURCE_IDENTITY,
      Policy: RENDERED_POLICY,
      Tags: [
        { Key: "jitv:task", Value: taskId },
        { Key: "jitv:agent", Value: AGENT },
        { Key: "jitv:template", Value: "reports-read" },
      ],
      DurationSeconds: 1200,
    };
    expect(sts).toHaveReceivedCommandExactlyOnceWith(AssumeRoleCommand, expected);
    expect(sts.commandCalls(AssumeRoleCommand)[0]?.args[0].input).toStrictEqual(expected);

    const stored = await new DynamoTaskRepository({ client: table.doc, tableName: table.tableName }).get(
      taskId,
    );
    expect(stored).toMatchObject({
      status: "active",
      purpose: FIXTURE_PURPOSE,
      idempotencyKey: "nightly-q3-1",
      issuedCount: 1,
      sessionPolicy: RENDERED_POLICY,
    });

    // What CloudWatch Logs would hold: the vend audited, and neither token nor credentials.
    const audit = auditEvents(logs.json());
    expect(audit.map((e) => e.event)).toEqual(["vend.allowed", "credentials.issued"]);
    expect(audit[0]).toMatchObject({ taskId, template: "reports-read", purpose: FIXTURE_PURPOSE });
    const written = logs.raw.join("");
    const token = event.headers.AUTHORIZATION?.slice("Bearer ".length) ?? "";
    expect(token.length).toBeGreaterThan(100);
    expect(written).not.toContain(token);
    expect(written).not.toContain(body.credentials.SecretAccessKey);
    expect(written).not.toContain(body.credentials.SessionToken);
  });

  it("honours the Idempotency-Key header whatever its case: a replay returns the same task with fresh credentials", async () => {
    const first = await invoke(await postTasksEvent({ idempotencyKey: "replay-key-7" }));
    expect(first.statusCode).toBe(201);
    const again = await invoke(await postTasksEvent({ idempotencyKey: "replay-key-7" }));
    expect(again.statusCode).toBe(201);
    expect(json(again).taskId).toBe(json(first).taskId);
    expect(json(again).credentials.AccessKeyId).not.toBe(json(first).credentials.AccessKeyId);
    // One task: both STS sessions carry its id; the execution name makes the second start a no-op.
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 2);
    expect(sts).toHaveReceivedNthCommandWith(AssumeRoleCommand, 2, { RoleSessionName: json(first).taskId });
    expect(sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.name)).toEqual([
      json(first).taskId,
      json(first).taskId,
    ]);

    const other = await invoke(await postTasksEvent({ idempotencyKey: "replay-key-8" }));
    expect(other.statusCode).toBe(201);
    expect(json(other).taskId).not.toBe(json(first).taskId);
  });

  it("accepts a plain (not base64) body, as API Gateway sends text without binary media types", async () => {
    const event = withBody(
      await postTasksEvent(),
      { template: "reports-read", parameters: { prefix: "q4" }, purpose: "plain text body" },
      "text",
    );
    const result = await invoke(event);
    expect(result.statusCode).toBe(201);
    expect(json(result)).toMatchObject({ purpose: "plain text body" });
    expect(sts).toHaveReceivedCommandWith(AssumeRoleCommand, {
      Policy: RENDERED_POLICY.replace("/q3/", "/q4/"),
      DurationSeconds: 900,
    });
  });

  it("answers 202 for a template that needs approval, announcing it on EventBridge and calling no STS", async () => {
    const event = withBody(
      await postTasksEvent(),
      { template: "reports-approved", parameters: { prefix: "q3" }, purpose: "quarterly close" },
      "base64",
    );
    const result = await invoke(event);
    expect(result.statusCode).toBe(202);
    const body = json(result);
    expect(body).toMatchObject({ status: "pending_approval", template: "reports-approved" });
    expect(body.credentials).toBeUndefined();
    expect(sts).not.toHaveReceivedAnyCommand();
    expect(sfn).toHaveReceivedCommandExactlyOnceWith(StartExecutionCommand, { name: body.taskId });
    expect(JSON.parse(sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input.input ?? "{}")).toMatchObject(
      {
        taskId: body.taskId,
        approvalRequired: true,
      },
    );
    expect(eventBridge).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    const entry = eventBridge.commandCalls(PutEventsCommand)[0]?.args[0].input.Entries?.[0];
    expect(entry).toMatchObject({
      Source: "jitv",
      DetailType: "Task pending approval",
      EventBusName: EVENT_BUS,
    });
    expect(JSON.parse(entry?.Detail ?? "{}")).toMatchObject({
      taskId: body.taskId,
      template: "reports-approved",
    });
  });
});

describe("the caller's address (requestContext.identity.sourceIp) in the Cedar context", () => {
  it("vends to a caller inside 10.0.0.0/8", async () => {
    const result = await invoke(fromIp(await postTasksEvent(), "10.200.3.4"));
    expect(result.statusCode).toBe(201);
  });

  it("refuses a caller outside it with 403 naming the policy, whatever X-Forwarded-For claims", async () => {
    const event = fromIp(await postTasksEvent(), "203.0.113.7");
    // A client can write any X-Forwarded-For; only API Gateway's own sourceIp may count.
    const spoofed: APIGatewayProxyEvent = {
      ...event,
      headers: { ...event.headers, "X-Forwarded-For": "10.1.2.3" },
      multiValueHeaders: { ...event.multiValueHeaders, "X-Forwarded-For": ["10.1.2.3"] },
    };
    const result = await invoke(spoofed);
    expectContractError(result, 403, "forbidden", event.requestContext.requestId);
    expect(json(result).error.message).toContain("vend-from-corp-network");
    expect(sfn).not.toHaveReceivedAnyCommand();
    expect(sts).not.toHaveReceivedAnyCommand();
    const denied = auditEvents(logs.json()).find((e) => e.event === "vend.denied");
    expect(denied?.policies).toEqual(["vend-from-corp-network"]);
  });

  it("refuses an IPv6 caller outside the range", async () => {
    const result = await invoke(fromIp(await postTasksEvent(), "2001:db8::17"));
    expectContractError(result, 403, "forbidden", "5b0f3c1e-8a2d-4f6b-9c7e-1d3f5a7b9c2e");
  });

  it("fails closed on the console's test invocation, whose sourceIp is not an address", async () => {
    const result = await invoke(fromIp(await postTasksEvent(), "test-invoke-source-ip"));
    expectContractError(result, 403, "forbidden", "5b0f3c1e-8a2d-4f6b-9c7e-1d3f5a7b9c2e");
    expect(sts).not.toHaveReceivedAnyCommand();
  });
});

describe("malformed requests", () => {
  it.each([
    ["base64 that decodes to bytes, not JSON", "%%%not base64 at all%%%", true],
    [
      "base64 of truncated JSON",
      Buffer.from('{"template": "reports-read", "parameters": {').toString("base64"),
      true,
    ],
    [
      "a base64 body API Gateway did not mark as base64",
      Buffer.from('{"template":"reports-read"}').toString("base64"),
      false,
    ],
  ])("answers 400 invalid_request for %s", async (_case, body, isBase64Encoded) => {
    const event = { ...(await postTasksEvent()), body, isBase64Encoded };
    const result = await invoke(event);
    expectContractError(result, 400, "invalid_request", event.requestContext.requestId);
    expect(json(result).error.message).toBe("request body is not valid JSON");
    expect(sfn).not.toHaveReceivedAnyCommand();
    expect(sts).not.toHaveReceivedAnyCommand();
  });

  it("answers 400 invalid_request for a field the contract does not know", async () => {
    const event = withBody(
      await postTasksEvent(),
      { template: "reports-read", parameters: { prefix: "q3" }, role: "admin" },
      "base64",
    );
    const result = await invoke(event);
    expectContractError(result, 400, "invalid_request", event.requestContext.requestId);
    expect(sts).not.toHaveReceivedAnyCommand();
  });

  it("answers 401 invalid_token with WWW-Authenticate when the Authorization header is missing", async () => {
    const event = await postTasksEvent();
    const { AUTHORIZATION: _h, ...headers } = event.headers;
    const { AUTHORIZATION: _m, ...multiValueHeaders } = event.multiValueHeaders;
    const result = await invoke({ ...event, headers, multiValueHeaders });
    expectContractError(result, 401, "invalid_token", event.requestContext.requestId);
    expect(result.headers?.["WWW-Authenticate"]).toBe('Bearer error="invalid_token"');
  });
});

describe("internal errors", () => {
  it("answers 500 internal, without the stored data, a stack or the cause, when a stored template is corrupt", async () => {
    await table.doc.send(
      new PutCommand({
        TableName: table.tableName,
        Item: {
          ...templateKey("broken"),
          type: "template",
          name: "broken",
          body: '{"name":"broken","roleArn":"arn:aws:iam::123456789012:role/x","secretMarker":"s3cr3t-db-password"',
        },
      }),
    );
    const event = withBody(await postTasksEvent(), { template: "broken" }, "base64");
    const result = await invoke(event);
    expectContractError(result, 500, "internal", event.requestContext.requestId);
    expect(result.body).not.toContain("s3cr3t-db-password");
    expect(result.body).not.toMatch(/SyntaxError|\n\s+at |\.ts:\d+/);
    expect(sts).not.toHaveReceivedAnyCommand();
    // Operators get the failure in the logs (stderr, as Powertools writes errors), with its code.
    expect(logs.json()).toContainEqual(
      expect.objectContaining({ level: "ERROR", message: "request failed", code: "internal" }),
    );
  });

  it("answers the last-resort 500 when an event the API does not understand escapes it (an HTTP API v2 payload)", async () => {
    const event = loadEvent("apigw-http-v2-post-tasks.json", {
      "agent-token": await agents.sign({ sub: AGENT }),
    });
    const context = lambdaContext("jitv-api");
    const result = await handler(event as APIGatewayProxyEvent, context);
    expect(result).toEqual({
      statusCode: 500,
      headers: {
        "content-type": "application/json",
        "cache-control": "no-store",
        "x-request-id": context.awsRequestId,
      },
      body: JSON.stringify({ error: { code: "internal", message: "internal error" } }),
    });
    expect(sts).not.toHaveReceivedAnyCommand();
  });
});

describe("GET /v1/tasks/{taskId} through the Lambda handler", () => {
  it("reads the task named by the path, without credentials", async () => {
    const vended = json(await invoke(await postTasksEvent()));
    const event = loadEvent<APIGatewayProxyEvent>("apigw-rest-get-task.json", {
      taskId: vended.taskId,
      "agent-token": await agents.sign({ sub: AGENT }),
    });
    expect(event.pathParameters).toEqual({ taskId: vended.taskId });
    const result = await invoke(event);
    expect(result.statusCode).toBe(200);
    expect(result.headers?.["x-request-id"]).toBe(event.requestContext.requestId);
    expect(json(result)).toEqual({
      taskId: vended.taskId,
      status: "active",
      template: "reports-read",
      agent: { issuer: agents.issuer, id: AGENT },
      purpose: FIXTURE_PURPOSE,
      createdAt: vended.createdAt,
      expiresAt: vended.expiresAt,
    });
  });

  it("answers 404 not_found for an unknown task id, and for another agent's task", async () => {
    const unknown = loadEvent<APIGatewayProxyEvent>("apigw-rest-get-task.json", {
      taskId: "tsk_0000000000000000000000000a",
      "agent-token": await agents.sign({ sub: AGENT }),
    });
    expectContractError(await invoke(unknown), 404, "not_found", unknown.requestContext.requestId);

    const vended = json(await invoke(await postTasksEvent()));
    const stranger = loadEvent<APIGatewayProxyEvent>("apigw-rest-get-task.json", {
      taskId: vended.taskId,
      "agent-token": await agents.sign({ sub: "someone-else" }),
    });
    expectContractError(await invoke(stranger), 404, "not_found", stranger.requestContext.requestId);
    expect(sfn).not.toHaveReceivedCommand(SendTaskSuccessCommand);
  });
});

describe("the function's IAM role (cdk synth)", () => {
  it("allows every AWS call the handler made in the tests above", async () => {
    const actions = new Set(recorder.calls().map((call) => call.action));
    expect(actions).toContain("sts:AssumeRole");
    expect(actions).toContain("states:StartExecution");
    expect(await callsNotAllowed(recorder.calls())).toEqual([]);
  });
});
