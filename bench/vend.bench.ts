// npm run bench: the vend path against its I/O floor (issue 12), and the sandbox's throughput.
//
// 1. Vend latency through the app layer (composeApi: HTTP routing, real ES256 tokens from a real
//    JWKS, Cedar, rendering, the DynamoDB adapters on DynamoDB Local), with AWS-like latencies
//    injected into the ports: every DynamoDB call, StartExecution and AssumeRole. In the same run,
//    the floor: the calls a vend cannot avoid, made bare with the same latencies, in the order
//    the design needs (one transaction → StartExecution ∥ AssumeRole → the issue record). Both
//    are measured in alternating repetitions; the figures are medians over the repetitions.
// 2. DynamoDB calls per vend (all, and those waited on one after another).
// 3. The handler's own CPU per warm vend, every port in memory: after a warm-up long enough for
//    V8 to have compiled the hot path, the CPU time of each vend (the main thread's where Node
//    has `process.threadCpuUsage`, ≥ 23.9; else the whole process's, `process.cpuUsage`), less
//    the GC pauses that fell in it (PerformanceObserver `gc` entries), with the GC pauses
//    amortised per vend and the raw figures beside; medians over repetitions.
// 4. The sandbox (`npm start`): vends per second, sequential and 20 concurrent.
//
// Flags: --dynamodb-ms 6 --sfn-ms 40 --sts-ms 150 --vends 40 --reps 3, --cpu-warm 5000
// --cpu-vends 1000 --cpu-reps 5, --cpu-only (part 3 alone), --json.
// Prints figures; asserts nothing. With --json: one JSON object on stdout, nothing else.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
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
const cpuRun = {
  warm: Math.round(flag("cpu-warm", 5000)),
  vends: Math.max(1, Math.round(flag("cpu-vends", 1000))),
  reps: Math.max(1, Math.round(flag("cpu-reps", 5))),
};
const cpuOnly = argv.includes("--cpu-only");
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
const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

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

/** CPU time in ms of a `cpuUsage`-shaped reading. */
const cpuMs = (usage: NodeJS.CpuUsage) => (usage.user + usage.system) / 1000;
/** The main thread's CPU clock (Node ≥ 23.9); absent on older Node, whose `cpuUsage` is the whole process's. */
const threadCpuUsage = (process as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage?.bind(process);
const cpuFigures = (ms: readonly number[]) => ({
  p50: quantile(ms, 0.5),
  p99: quantile(ms, 0.99),
  mean: mean(ms),
});
type Figures = ReturnType<typeof cpuFigures>;
/** Each figure's median over the repetitions, rounded. */
const medianFigures = (runs: readonly Figures[]) => ({
  p50: round(median(runs.map((f) => f.p50))),
  p99: round(median(runs.map((f) => f.p99))),
  mean: round(median(runs.map((f) => f.mean))),
});

/**
 * 3. The handler's own CPU per warm vend: the same HTTP API and service as the Lambda, every port
 * in memory. The verifier (with its cached JWKS), Cedar (with its pre-parsed policies) and the
 * roles live as long as the process, as in a Lambda instance; each round of vends gets fresh
 * in-memory ports, since the fakes keep every task and call (no Lambda's ports do, and an ever
 * larger heap would make each GC pause longer). Warm-up rounds first (V8 tiers a function called
 * once per vend up late, and its compiler threads count in `process.cpuUsage`), then measured
 * rounds; each figure is the median over the measured rounds.
 */
async function measureHandlerCpu() {
  const authorizer = new CedarAuthorizer({ store: { current: async () => ({ version: "v1", text: "" }) } });
  const roles = new StaffRoles(issuers.admins, issuers.approvers);
  const verifier = new TokenVerifier({ config: issuers });
  const memoryApi = () => {
    const audit = new MemoryAuditLog();
    const access = new AccessControl({ authorizer, roles, audit });
    const tasks = new MemoryTaskRepository();
    const templates = new MemoryTemplateStore([template(issuer.issuer)]);
    const taskTokens = new MemoryTaskTokens();
    const api = createApi({
      service: new TaskService({
        verifier,
        templates,
        tasks,
        authorizer,
        broker: new MemoryCredentialBroker(),
        audit,
        lifecycle: new MemoryLifecycle(),
        tokens: taskTokens,
        notifier: new MemoryNotifier(),
        roles,
        access,
        agents: new MemoryAgentRegistry(),
      }),
      approvals: new ApprovalService({
        tasks,
        templates,
        approvals: new MemoryApprovalStore(tasks),
        tokens: taskTokens,
        roles,
        access,
        audit,
      }),
      logger: quiet,
    });
    return { api, audit };
  };
  /** One round of vends on fresh ports: each vend's window, its CPU (main thread and whole process). */
  async function vendRound(n: number) {
    const { api, audit } = memoryApi();
    const vends: { t0: number; t1: number; process: number; thread: number | undefined }[] = [];
    for (const token of await tokens(n)) {
      audit.events.length = 0;
      const t0 = performance.now();
      const thread0 = threadCpuUsage?.();
      const process0 = process.cpuUsage();
      await post(api, token);
      const processMs = cpuMs(process.cpuUsage(process0));
      const threadMs = thread0 && threadCpuUsage ? cpuMs(threadCpuUsage()) - cpuMs(thread0) : undefined;
      vends.push({ t0, t1: performance.now(), process: processMs, thread: threadMs });
    }
    return vends;
  }

  for (let warmed = 0; warmed < cpuRun.warm; warmed += cpuRun.vends) {
    await vendRound(Math.min(cpuRun.vends, cpuRun.warm - warmed));
  }
  // GC pauses of the main thread (scavenges, mark-compact's pauses), timed on performance.now()'s clock.
  const pauses: { start: number; ms: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pauses.push({ start: entry.startTime, ms: entry.duration });
  });
  observer.observe({ entryTypes: ["gc"] });
  const runs: {
    own: Figures;
    process: Figures;
    thread?: Figures;
    gcMsPerVend: number;
    gcPerThousand: number;
  }[] = [];
  try {
    for (let rep = 0; rep < cpuRun.reps; rep++) {
      pauses.length = 0;
      const vends = await vendRound(cpuRun.vends);
      await sleep(20); // the observer is told of the round's last pauses asynchronously
      const from = vends[0]?.t0 ?? 0;
      const to = vends.at(-1)?.t1 ?? 0;
      const inRound = pauses.filter((p) => p.start >= from && p.start < to);
      const own = vends.map((v) => {
        const gcMs = inRound.filter((p) => p.start >= v.t0 && p.start < v.t1).reduce((a, p) => a + p.ms, 0);
        return Math.max(0, (v.thread ?? v.process) - gcMs);
      });
      const threads = vends.flatMap((v) => (v.thread === undefined ? [] : [v.thread]));
      runs.push({
        own: cpuFigures(own),
        process: cpuFigures(vends.map((v) => v.process)),
        ...(threads.length === vends.length ? { thread: cpuFigures(threads) } : {}),
        gcMsPerVend: inRound.reduce((a, p) => a + p.ms, 0) / vends.length,
        gcPerThousand: (inRound.length * 1000) / vends.length,
      });
    }
  } finally {
    observer.disconnect();
  }
  const threadRuns = runs.flatMap((r) => (r.thread ? [r.thread] : []));
  return {
    clock: threadCpuUsage ? "main thread (process.threadCpuUsage)" : "whole process (process.cpuUsage)",
    warmVends: cpuRun.warm,
    repetitions: cpuRun.reps,
    vendsPerRepetition: cpuRun.vends,
    /** CPU of the vend on `clock`, less the GC pauses that fell in it: the goal's figure. */
    excludingGcPauses: medianFigures(runs.map((r) => r.own)),
    /** Every GC pause of the round, over its vends. */
    gcPauseMsPerVend: round(median(runs.map((r) => r.gcMsPerVend))),
    gcPausesPerThousandVends: round(median(runs.map((r) => r.gcPerThousand))),
    /** Raw: `process.cpuUsage` around the vend (every thread: V8's compiler and GC helpers, libuv's pool). */
    wholeProcess: medianFigures(runs.map((r) => r.process)),
    ...(threadRuns.length === runs.length ? { mainThread: medianFigures(threadRuns) } : {}),
  };
}
type HandlerCpu = Awaited<ReturnType<typeof measureHandlerCpu>>;

/** The handler CPU lines of the human-readable output. */
function sayHandlerCpu(cpu: HandlerCpu): void {
  const line = (f: { p50: number; p99: number; mean: number }) =>
    `p50=${f.p50} ms  p99=${f.p99} ms  mean=${f.mean} ms`;
  say(
    `handler CPU per warm vend   ${line(cpu.excludingGcPauses)}  (goal p99 ≤ 3 ms; ${cpu.clock}, GC pauses excluded; ${cpu.repetitions} × ${cpu.vendsPerRepetition} vends after ${cpu.warmVends})`,
  );
  say(
    `  GC pauses, amortised      ${cpu.gcPauseMsPerVend} ms per vend  (${cpu.gcPausesPerThousandVends} pauses per 1,000 vends)`,
  );
  say(
    `  raw, whole process        ${line(cpu.wholeProcess)}  (process.cpuUsage: GC, compiler and pool threads too)`,
  );
  if (cpu.mainThread) say(`  raw, main thread          ${line(cpu.mainThread)}  (GC pauses included)`);
}

if (cpuOnly) {
  const cpu = await measureHandlerCpu();
  if (asJson) console.log(JSON.stringify({ handlerCpuMsPerVend: cpu, goalHandlerCpuP99Ms: 3 }));
  else sayHandlerCpu(cpu);
  await issuer.close();
  process.exit(0);
}

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

  const cpu = await measureHandlerCpu();

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
    handlerCpuMsPerVend: cpu,
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
    sayHandlerCpu(cpu);
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
