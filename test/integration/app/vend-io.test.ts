import { Logger } from "@aws-lambda-powertools/logger";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SFNClient, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MemoryAuditLog } from "../../../lib/audit/logger-audit-log.js";
import { StsBroker } from "../../../lib/credentials/sts-broker.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { type ApiCore, composeApi } from "../../../lib/http/compose-api.js";
import { parseIssuerConfig } from "../../../lib/identity/issuers.js";
import { SfnLifecycleStarter, SfnTaskTokenSender } from "../../../lib/tasks/sfn-lifecycle.js";
import { apiClient } from "../../support/api-client.js";
import { createTestTable, localClientConfig } from "../../support/dynamodb.js";
import { criticalPath, PortCallLog } from "../../support/port-calls.js";
import { startTestIssuer, type TestIssuer } from "../../support/test-issuer.js";

// The vend's I/O through the HTTP API, on DynamoDB Local, with the real STS and Step Functions
// adapters on mocked clients: how many DynamoDB round trips a warm vend makes and which of them
// it waits on one after another, and what leaves when the lifecycle start and STS, run side by
// side, fail in either order (CONTRACT.md section 6).

const STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:jitv-task-lifecycle";
/** Added to every DynamoDB call, so calls that run side by side overlap whatever the machine's speed. */
const DYNAMODB_LATENCY_MS = 20;
const sts = mockClient(STSClient);
const sfn = mockClient(SFNClient);

const dynamo = new PortCallLog();

let agents: TestIssuer;
let core: ApiCore;
let audit: MemoryAuditLog;
let issued = 0;

beforeAll(async () => {
  const [issuer, table] = await Promise.all([startTestIssuer({ alg: "ES256" }), createTestTable()]);
  agents = issuer;
  const client = new DynamoDBClient(localClientConfig());
  dynamo.dynamodb(client, DYNAMODB_LATENCY_MS);
  audit = new MemoryAuditLog();
  const sfnClient = new SFNClient({ region: "us-east-1" });
  core = composeApi({
    doc: DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } }),
    tableName: table.tableName,
    issuers: parseIssuerConfig({
      issuers: [agents.profile({ name: "agents", kind: "agent", zone: "workforce" })],
    }),
    broker: new StsBroker({ client: new STSClient({ region: "us-east-1", maxAttempts: 1 }) }),
    lifecycle: new SfnLifecycleStarter({ client: sfnClient, stateMachineArn: STATE_MACHINE_ARN }),
    tokens: new SfnTaskTokenSender({ client: sfnClient }),
    logger: new Logger({ serviceName: "jitv-test", logLevel: "CRITICAL" }),
    audit,
  });
  await core.templates.put(
    parseTemplate({
      name: "reports-read",
      zone: "workforce",
      roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
      sessionPolicy: {
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::reports/*" }],
      },
      agents: [{ issuer: agents.issuer, subjects: ["agent-a"] }],
    }),
  );
});

afterAll(async () => {
  sts.restore();
  sfn.restore();
  await agents?.close();
});

/** STS's answer: a credential no other call returns. */
function credentials() {
  issued += 1;
  return {
    Credentials: {
      AccessKeyId: `ASIAVENDIO${String(issued).padStart(10, "0")}`,
      SecretAccessKey: `secret-${issued}`,
      SessionToken: `session-${issued}`,
      Expiration: new Date(Date.now() + 900_000),
    },
  };
}

beforeEach(() => {
  sts.reset();
  sfn.reset();
  sts.on(AssumeRoleCommand).callsFake(async () => credentials());
  sfn.on(StartExecutionCommand).callsFake(async (input: { name: string }) => ({
    executionArn: `${STATE_MACHINE_ARN}:${input.name}`,
    startDate: new Date(),
  }));
});

const call = apiClient(() => core.api);
const vend = async () =>
  call("POST", "/v1/tasks", {
    token: await agents.sign({ sub: "agent-a" }),
    body: { template: "reports-read" },
  });

function taskIdOf(requestId: string): string {
  const allowed = audit.events.find((e) => e.event === "vend.allowed" && e.requestId === requestId);
  if (typeof allowed?.taskId !== "string") throw new Error(`no task for ${requestId}`);
  return allowed.taskId;
}

describe("a warm vend's DynamoDB round trips", () => {
  it("makes 3 in all, of which it waits on 2 one after another", async () => {
    // The first vend reads the template and the policy sets into their caches.
    expect((await vend()).status).toBe(201);
    dynamo.clear();

    const res = await vend();

    expect(res.status).toBe(201);
    // The one transaction (rate, jti, task, lease, slot, idempotency), the issue record, and
    // the agent registry beside them.
    expect(dynamo.calls.map((c) => c.command).sort()).toEqual([
      "TransactWriteItemsCommand",
      "UpdateItemCommand",
      "UpdateItemCommand",
    ]);
    expect(dynamo.calls[0]?.command).toBe("TransactWriteItemsCommand");
    expect(criticalPath(dynamo.calls).map((c) => c.command)).toEqual([
      "TransactWriteItemsCommand",
      "UpdateItemCommand",
    ]);
    expect(await core.tasks.get(res.json.taskId)).toMatchObject({ status: "active", issuedCount: 1 });
  });
});

describe("the lifecycle start and STS side by side, through the HTTP API", () => {
  /** A promise and the function that resolves it. */
  function signal() {
    let fire = () => {};
    const fired = new Promise<void>((done) => {
      fire = done;
    });
    return { fired, fire };
  }
  const failure = (name: string) => Object.assign(new Error(`${name} (test)`), { name, $metadata: {} });

  it.each([
    { order: "STS answers, then StartExecution fails", stsFirst: true },
    { order: "StartExecution fails, then STS answers", stsFirst: false },
  ])("drops the credential and fails the task when $order", async ({ stsFirst }) => {
    const first = signal();
    sts.on(AssumeRoleCommand).callsFake(async () => {
      if (!stsFirst) await first.fired;
      const answer = credentials();
      first.fire();
      return answer;
    });
    sfn.on(StartExecutionCommand).callsFake(async () => {
      if (stsFirst) await first.fired;
      first.fire();
      throw failure("AccessDeniedException");
    });

    const res = await vend();

    expect(res.status).toBe(503);
    expect(res.json).toEqual({ error: { code: "upstream_unavailable", message: expect.any(String) } });
    expect(sts.commandCalls(AssumeRoleCommand)).toHaveLength(1);
    // The minted credential never left the service.
    expect(res.body).not.toContain(`ASIAVENDIO${String(issued).padStart(10, "0")}`);
    expect(await core.tasks.get(taskIdOf(res.requestId))).toMatchObject({
      status: "failed",
      reason: "could not schedule the task's lifecycle",
      issuedCount: 0,
    });
  });

  it.each([
    { order: "StartExecution succeeds, then STS fails", stsFirst: false },
    { order: "STS fails, then StartExecution succeeds", stsFirst: true },
  ])("answers 503 and fails the task when $order", async ({ stsFirst }) => {
    const first = signal();
    sts.on(AssumeRoleCommand).callsFake(async () => {
      if (!stsFirst) await first.fired;
      first.fire();
      throw failure("RegionDisabledException");
    });
    sfn.on(StartExecutionCommand).callsFake(async (input: { name: string }) => {
      if (stsFirst) await first.fired;
      first.fire();
      return { executionArn: `${STATE_MACHINE_ARN}:${input.name}`, startDate: new Date() };
    });

    const res = await vend();

    expect(res.status).toBe(503);
    expect(res.json.credentials).toBeUndefined();
    const taskId = taskIdOf(res.requestId);
    expect(sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.name)).toEqual([taskId]);
    expect(await core.tasks.get(taskId)).toMatchObject({ status: "failed", issuedCount: 0 });
  });
});
