// npm run bench: the vend path against its I/O floor (issue 12), and the sandbox's throughput.
//
// 1. Vend latency through the app layer (composeApi: HTTP routing, real ES256 tokens from a real
//    JWKS, Cedar, rendering, the DynamoDB adapters on DynamoDB Local), with AWS-like latencies
//    injected into the ports: every DynamoDB call, StartExecution and AssumeRole. In the same run,
//    the floor: the calls a vend cannot avoid, made bare with the same latencies, in the order
//    the design needs (one transaction → StartExecution ∥ AssumeRole → the issue record). Both
//    are measured in alternating repetitions; the figures are medians over the repetitions.
// 2. DynamoDB calls per vend (all, and those waited on one after another).
// 3. The handler's own CPU per warm vend, every port in memory (process.cpuUsage).
// 4. The sandbox (`npm start`): vends per second, sequential and 20 concurrent.
//
// Flags: --dynamodb-ms 6 --sfn-ms 40 --sts-ms 150 --vends 40 --reps 3 --json.
// Prints figures; asserts nothing. With --json: one JSON object on stdout, nothing else.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Logger } from "@aws-lambda-powertools/logger";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, TransactWriteCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { AccessControl } from "../lib/app/access.js";
import { ApprovalService } from "../lib/app/approval-service.js";
import { TaskService } from "../lib/app/task-service.js";
import { CedarAuthorizer } from "../lib/authz/cedar-authorizer.js";
import { StaffRoles } from "../lib/authz/roles.js";
import type { CredentialBroker } from "../lib/credentials/broker.js";
import { newTaskId } from "../lib/domain/ids.js";
import type { AssumeRoleRequest } from "../lib/domain/sts.js";
import type { Task } from "../lib/domain/task.js";
import { parseTemplate } from "../lib/domain/template.js";
import { createApi } from "../lib/http/api.js";
import { composeApi } from "../lib/http/compose-api.js";
import type { HttpRequest, HttpResponse } from "../lib/http/types.js";
import { parseIssuerConfig } from "../lib/identity/issuers.js";
import { TokenVerifier } from "../lib/identity/verifier.js";
import { fetchClientCredentialsToken } from "../lib/sandbox/client-credentials.js";
import { startDynamoDbLocal } from "../lib/sandbox/dynamodb-local.js";
import { startSandbox } from "../lib/sandbox/sandbox.js";
import { replayPut } from "../lib/store/replay.js";
import { ensureTable, leaseItem, rateBucketKey, taskItem, taskKey } from "../lib/store/table.js";
import type { LifecycleStarter } from "../lib/tasks/lifecycle.js";
import { GcraBucket } from "../lib/tasks/rate-bucket.js";
import {
  MemoryAgentRegistry,
  MemoryApprovalStore,
  MemoryAuditLog,
  MemoryCredentialBroker,
  MemoryLifecycle,
  MemoryNotifier,
  MemoryTaskRepository,
  MemoryTaskTokens,
  MemoryTemplateStore,
} from "../test/support/fakes.js";
import { criticalPath, PortCallLog } from "../test/support/port-calls.js";
import { startTestIssuer } from "../test/support/test-issuer.js";

const argv = process.argv.slice(2);
const asJson = argv.includes("--json");
function flag(name: string, fallback: number): number {
  const at = argv.indexOf(`--${name}`);
  const value = at === -1 ? fallback : Number(argv[at + 1]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} needs a number`);
  return value;
}
const latency = { dynamodb: flag("dynamodb-ms", 6), sfn: flag("sfn-ms", 40), sts: flag("sts-ms", 150) };
const vendsPerRep = Math.max(1, Math.round(flag("vends", 40)));
const reps = Math.max(1, Math.round(flag("reps", 3)));
const say = asJson ? () => undefined : (line: string) => console.log(line);

process.env.POWERTOOLS_LOG_LEVEL ??= "ERROR";
const root = resolve(import.meta.dirname, "..");
const quiet = new Logger({ serviceName: "jitv-bench", logLevel: "CRITICAL" });
const round = (ms: number) => Math.round(ms * 100) / 100;

function quantile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}
const median = (values: readonly number[]) => quantile(values, 0.5);

/** Every port call of the measured vends (DynamoDB, StartExecution, AssumeRole), with its injected latency. */
const ports = new PortCallLog();
let minted = 0;
/** STS after `latency.sts`: the sandbox broker's kind of credential, never a real one. */
const slowBroker: CredentialBroker = {
  assumeRole: (request: AssumeRoleRequest) =>
    ports.call("sts", "AssumeRole", latency.sts, async () => ({
      AccessKeyId: `ASIABENCH${String(++minted).padStart(11, "0")}`,
      SecretAccessKey: "bench-secret",
      SessionToken: "bench-session",
      Expiration: new Date(Date.now() + request.durationSeconds * 1000).toISOString(),
    })),
};
const slowLifecycle: LifecycleStarter = {
  start: () => ports.call("sfn", "StartExecution", latency.sfn, async () => undefined),
};

const template = (agentIssuer: string) =>
  parseTemplate({
    name: "reports-read",
    zone: "workforce",
    roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
    sessionPolicy: {
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::reports/{{params.prefix}}/*"] },
      ],
    },
    parameters: { prefix: { pattern: "^[a-z0-9-]{1,32}$" } },
    agents: [{ issuer: agentIssuer, subjects: ["bench-agent"] }],
  });

const issuer = await startTestIssuer({ alg: "ES256" });
const issuers = parseIssuerConfig({
  issuers: [issuer.profile({ name: "agents", kind: "agent", zone: "workforce" })],
});
const vendBody = JSON.stringify({ template: "reports-read", parameters: { prefix: "q3" } });
let requests = 0;
async function post(api: (req: HttpRequest) => Promise<HttpResponse>, token: string): Promise<HttpResponse> {
  const res = await api({
    method: "POST",
    path: "/v1/tasks",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    query: {},
    body: vendBody,
    requestId: `req-bench-${++requests}`,
  });
  if (res.status !== 201) throw new Error(`vend answered ${res.status}`);
  return res;
}
/** Tokens are signed up front (each jti vends once): the issuer is not what is measured. */
const tokens = (n: number) =>
  Promise.all(Array.from({ length: n }, () => issuer.sign({ sub: "bench-agent" })));

const ddb = await startDynamoDbLocal();
try {
  // 1–2. The app layer on DynamoDB Local, and the floor, with the same injected latencies.
  const client = new DynamoDBClient({
    endpoint: ddb.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  const tableName = "jitv-bench-vend";
  await ensureTable(client, tableName);
  ports.dynamodb(client, latency.dynamodb);
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  const core = composeApi({
    doc,
    tableName,
    issuers,
    broker: slowBroker,
    lifecycle: slowLifecycle,
    tokens: { sendSuccess: async () => undefined },
    // Measure the vend path, not the per-agent rate limit.
    vendRate: { capacity: 1_000_000, refillPerSecond: 1_000_000 },
    logger: quiet,
    audit: new MemoryAuditLog(),
  });
  await core.templates.put(template(issuer.issuer));

  const bucket = new GcraBucket();
  /** The calls a vend cannot avoid, bare: its one transaction, then StartExecution ∥ AssumeRole, then the issue record. */
  async function floorVend(): Promise<void> {
    const now = Date.now();
    const task: Task = {
      taskId: newTaskId(),
      status: "active",
      template: "reports-read",
      zone: "workforce",
      roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
      agent: { issuer: issuer.issuer, id: "floor-agent" },
      parameters: { prefix: "q3" },
      sessionPolicy: "{}",
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 900_000).toISOString(),
      ttlSeconds: 900,
      issuedCount: 0,
    };
    await doc.send(
      new TransactWriteCommand({
        TransactItems: [
          { Update: bucket.update(tableName, rateBucketKey(issuer.issuer, task.taskId), "idle", now) },
          {
            Put: replayPut(
              tableName,
              { issuer: issuer.issuer, jti: task.taskId, exp: Math.floor(now / 1000) + 300 },
              Math.floor(now / 1000),
            ),
          },
          {
            Put: {
              TableName: tableName,
              Item: taskItem(task),
              ConditionExpression: "attribute_not_exists(pk)",
            },
          },
          { Put: { TableName: tableName, Item: leaseItem(task.taskId, task.expiresAt) } },
        ],
      }),
    );
    await Promise.all([
      ports.call("sfn", "StartExecution", latency.sfn, async () => undefined),
      ports.call("sts", "AssumeRole", latency.sts, async () => undefined),
    ]);
    await doc.send(
      new UpdateCommand({
        TableName: tableName,
        Key: taskKey(task.taskId),
        UpdateExpression: "ADD issuedCount :one SET lastCredentialExpiry = :expiry",
        ExpressionAttributeValues: { ":one": 1, ":expiry": task.expiresAt },
      }),
    );
  }

  // Warm: JWKS, policies, the template cache, the SDK's connections.
  for (const token of await tokens(5)) await post(core.api, token);
  for (let i = 0; i < 5; i++) await floorVend();

  const perRep: { vend: number[]; floor: number[] }[] = [];
  const callsPerVend: number[] = [];
  const chainPerVend: number[] = [];
  for (let rep = 0; rep < reps; rep++) {
    const signed = await tokens(vendsPerRep);
    const vend: number[] = [];
    for (const token of signed) {
      ports.clear();
      const t0 = performance.now();
      await post(core.api, token);
      vend.push(performance.now() - t0);
      const dynamodb = (calls: readonly { port: string }[]) =>
        calls.filter((c) => c.port === "dynamodb").length;
      callsPerVend.push(dynamodb(ports.calls));
      chainPerVend.push(dynamodb(criticalPath(ports.calls)));
    }
    const floor: number[] = [];
    for (let i = 0; i < vendsPerRep; i++) {
      const t0 = performance.now();
      await floorVend();
      floor.push(performance.now() - t0);
    }
    perRep.push({ vend, floor });
  }
  const vendP50 = median(perRep.map((r) => quantile(r.vend, 0.5)));
  const vendP99 = median(perRep.map((r) => quantile(r.vend, 0.99)));
  const floorP50 = median(perRep.map((r) => quantile(r.floor, 0.5)));
  const floorP99 = median(perRep.map((r) => quantile(r.floor, 0.99)));

  // 3. The handler's own CPU: the same HTTP API and service, every port in memory.
  const audit = new MemoryAuditLog();
  const authorizer = new CedarAuthorizer({ store: { current: async () => ({ version: "v1", text: "" }) } });
  const roles = new StaffRoles(issuers.admins, issuers.approvers);
  const access = new AccessControl({ authorizer, roles, audit });
  const memTasks = new MemoryTaskRepository();
  const memTemplates = new MemoryTemplateStore([template(issuer.issuer)]);
  const memTokens = new MemoryTaskTokens();
  const memoryApi = createApi({
    service: new TaskService({
      verifier: new TokenVerifier({ config: issuers }),
      templates: memTemplates,
      tasks: memTasks,
      authorizer,
      broker: new MemoryCredentialBroker(),
      audit,
      lifecycle: new MemoryLifecycle(),
      tokens: memTokens,
      notifier: new MemoryNotifier(),
      roles,
      access,
      agents: new MemoryAgentRegistry(),
    }),
    approvals: new ApprovalService({
      tasks: memTasks,
      templates: memTemplates,
      approvals: new MemoryApprovalStore(memTasks),
      tokens: memTokens,
      roles,
      access,
      audit,
    }),
    logger: quiet,
  });
  // Warm as a busy Lambda instance is: V8 has compiled the hot paths (its compiler and GC threads
  // count in process.cpuUsage, which on Node 20 covers the whole process).
  for (const token of await tokens(1000)) await post(memoryApi, token);
  const cpu: number[] = [];
  for (const token of await tokens(1000)) {
    audit.events.length = 0;
    const before = process.cpuUsage();
    await post(memoryApi, token);
    const used = process.cpuUsage(before);
    cpu.push((used.user + used.system) / 1000);
  }

  // 4. The sandbox, as `npm start` runs it (on the same DynamoDB Local).
  const sandbox = await startSandbox({
    port: 0,
    issuerPort: 8788, // the example templates name this issuer
    dynamodbEndpoint: ddb.endpoint,
    templatesDir: join(root, "examples", "templates"),
    rolesDir: join(root, "examples", "roles"),
    stateFile: join(mkdtempSync(join(tmpdir(), "jitv-bench-")), "state.json"),
    vendRate: { capacity: 10_000, refillPerSecond: 10_000 },
    logger: quiet,
  });
  let sandboxFigures: Record<string, { p50Ms: number; p95Ms: number; perSecond: number }>;
  try {
    const demo = sandbox.state.clients["demo-agent"];
    if (!demo) throw new Error("no demo agent");
    const sandboxToken = () =>
      fetchClientCredentialsToken({
        tokenEndpoint: demo.tokenEndpoint,
        clientId: "demo-agent",
        clientSecret: demo.secret,
      });
    const sandboxVend = async (bearer: string): Promise<number> => {
      const t0 = performance.now();
      const res = await fetch(`${sandbox.apiUrl}/v1/tasks`, {
        method: "POST",
        headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
        body: JSON.stringify({ template: "s3-reports-read" }),
      });
      await res.arrayBuffer();
      if (res.status !== 201) throw new Error(`sandbox vend answered ${res.status}`);
      return performance.now() - t0;
    };
    const figures = (ms: number[], wallMs: number) => ({
      p50Ms: round(quantile(ms, 0.5)),
      p95Ms: round(quantile(ms, 0.95)),
      perSecond: round((ms.length * 1000) / wallMs),
    });
    for (const t of await Promise.all(Array.from({ length: 20 }, sandboxToken))) await sandboxVend(t);
    const sequential = await Promise.all(Array.from({ length: 200 }, sandboxToken));
    let t0 = performance.now();
    const seq: number[] = [];
    for (const t of sequential) seq.push(await sandboxVend(t));
    const seqFigures = figures(seq, performance.now() - t0);
    const concurrent = await Promise.all(Array.from({ length: 200 }, sandboxToken));
    t0 = performance.now();
    const conc: number[] = [];
    for (let i = 0; i < concurrent.length; i += 20) {
      conc.push(...(await Promise.all(concurrent.slice(i, i + 20).map(sandboxVend))));
    }
    sandboxFigures = { sequential: seqFigures, concurrent20: figures(conc, performance.now() - t0) };
  } finally {
    await sandbox.close();
  }

  const result = {
    injectedLatencyMs: latency,
    repetitions: reps,
    vendsPerRepetition: vendsPerRep,
    vendMs: { p50: round(vendP50), p99: round(vendP99) },
    floorMs: { p50: round(floorP50), p99: round(floorP99) },
    ratioP50: round(vendP50 / floorP50),
    ratioP99: round(vendP99 / floorP99),
    goalRatio: 1.1,
    dynamodbCallsPerVend: {
      all: median(callsPerVend),
      criticalPath: median(chainPerVend),
      maxAll: Math.max(...callsPerVend),
    },
    goalDynamodbCalls: { all: 3, criticalPath: 2 },
    handlerCpuMsPerVend: {
      p50: round(quantile(cpu, 0.5)),
      p99: round(quantile(cpu, 0.99)),
      mean: round(cpu.reduce((a, b) => a + b, 0) / cpu.length),
    },
    goalHandlerCpuP99Ms: 3,
    sandbox: sandboxFigures,
  };
  if (asJson) {
    console.log(JSON.stringify(result));
  } else {
    say(
      `injected latency: DynamoDB ${latency.dynamodb} ms, StartExecution ${latency.sfn} ms, AssumeRole ${latency.sts} ms; ${reps} × ${vendsPerRep} vends (medians over repetitions)`,
    );
    say(`vend (app layer)            p50=${result.vendMs.p50} ms  p99=${result.vendMs.p99} ms`);
    say(`floor (bare calls)          p50=${result.floorMs.p50} ms  p99=${result.floorMs.p99} ms`);
    say(
      `vend / floor                p50=${result.ratioP50}  p99=${result.ratioP99}  (goal ≤ ${result.goalRatio})`,
    );
    say(
      `DynamoDB calls per vend     all=${result.dynamodbCallsPerVend.all} (max ${result.dynamodbCallsPerVend.maxAll})  critical path=${result.dynamodbCallsPerVend.criticalPath}  (goal ≤ 3, ≤ 2)`,
    );
    say(
      `handler CPU per warm vend   p50=${result.handlerCpuMsPerVend.p50} ms  p99=${result.handlerCpuMsPerVend.p99} ms  mean=${result.handlerCpuMsPerVend.mean} ms  (goal p99 ≤ 3 ms)`,
    );
    for (const [name, f] of Object.entries(sandboxFigures)) {
      say(
        `sandbox vend, ${name.padEnd(13)} p50=${f.p50Ms} ms  p95=${f.p95Ms} ms  throughput=${f.perSecond}/s`,
      );
    }
  }
} finally {
  await issuer.close();
  await ddb.stop();
  process.exit(0);
}
