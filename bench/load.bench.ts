// npm run bench -- load: a bounded load run on an in-process sandbox (issue 14). N agents vend,
// refresh, complete, get revoked (and leave some tasks running) on a handful of roles for S
// seconds, optionally under `--faults SPEC`; meanwhile one agent bursts past its vend rate and one
// past `maxActivePerAgent`. Then the faults stop, and every ended task must be denied by the
// sandbox's IAM simulation and every live one allowed. Prints the 5xx not injected (must be 0),
// lost tasks (must be 0), whether the limits held exactly, and p50/p99 per call.
// Flags: --agents N (default 50), --seconds S (default 60), --faults SPEC, --json (one JSON
// object on stdout, nothing else). Exit code 1 when an invariant broke.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Logger } from "@aws-lambda-powertools/logger";
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import type { Task } from "../lib/domain/task.js";
import { fetchClientCredentialsToken } from "../lib/sandbox/client-credentials.js";
import { type FaultSpec, parseFaultSpec } from "../lib/sandbox/faults.js";
import { SANDBOX_TABLE, startSandbox } from "../lib/sandbox/sandbox.js";
import { taskKey } from "../lib/store/table.js";
import { startTestIssuer } from "../test/support/test-issuer.js";

export interface LoadOptions {
  readonly agents: number;
  readonly seconds: number;
  readonly faults?: FaultSpec;
}

/** Latencies and answers of one kind of call. */
export interface CallStats {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly statuses: Record<string, number>;
}

export interface LoadResult {
  readonly agents: number;
  readonly seconds: number;
  readonly faults: FaultSpec;
  readonly injected: Record<string, number>;
  /** `burst`: the vends of the two bursts, all sent at once. */
  readonly calls: Record<"vend" | "refresh" | "complete" | "revoke" | "burst", CallStats>;
  /** 5xx answers that no injected fault explains: 500s, and 503s when nothing was injected. */
  readonly unexpected5xx: number;
  readonly tasks: { readonly ended: number; readonly live: number };
  /** Ended tasks whose sessions the simulation still allows, and live ones it denies. */
  readonly lost: { readonly endedNotDenied: number; readonly liveNotAllowed: number };
  /** Tasks whose revocation failed after retries under faults, ended by the lease backstop. */
  readonly backstopped: number;
  /**
   * Seconds from the end of the load (and of the faults) until every ended task was denied: the
   * revocation lag the load left behind (lifecycles queue on each role's revocation lock).
   */
  readonly settleSeconds: number;
  readonly rateLimit: {
    readonly attempts: number;
    readonly allowed: number;
    readonly capacity: number;
    /** Tokens the bucket can have refilled during the burst. */
    readonly refilledAtMost: number;
    readonly held: boolean;
  };
  readonly maxActive: {
    readonly max: number;
    readonly attempts: number;
    readonly allowed: number;
    /** After one of them completed: the next vend is allowed, the one after refused. */
    readonly freedSlotAllowed: boolean;
    readonly thenRefused: boolean;
    readonly held: boolean;
  };
  readonly ok: boolean;
}

const VEND_RATE = { capacity: 30, refillPerSecond: 0.2 };
const ROLES = 4;
const MAX_ACTIVE = 3;
/** How long ended tasks may take to be denied once the load stops, before they count as lost. */
const SETTLE_MS = 120_000;
const READ = (role: number) => ({
  action: "s3:GetObject",
  resource: `arn:aws:s3:::jitv-load-${role}/object`,
});

/**
 * Runs the load and checks the invariants. Everything listens on 127.0.0.1; the agents' tokens
 * come from a real ES256 test issuer added with `--issuers`, so any number of agents can vend.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const idp = await startTestIssuer({ alg: "ES256" });
  const dir = mkdtempSync(join(tmpdir(), "jitv-load-"));
  const agentIds = Array.from({ length: options.agents }, (_, i) => `agent-${i}`);
  const subjects = [...agentIds, "burst-rate", "burst-cap"];
  writeFileSync(
    join(dir, "issuers.json"),
    JSON.stringify({ issuers: [idp.profile({ name: "load-agents" })] }),
  );
  mkdirSync(join(dir, "templates"));
  const template = (name: string, role: number, extra: object = {}) =>
    writeFileSync(
      join(dir, "templates", `${name}.json`),
      JSON.stringify({
        name,
        zone: "workforce",
        roleArn: `arn:aws:iam::123456789012:role/jitv/load-${role}`,
        sessionPolicy: {
          Version: "2012-10-17",
          Statement: [
            { Effect: "Allow", Action: "s3:GetObject", Resource: `arn:aws:s3:::jitv-load-${role}/*` },
          ],
        },
        agents: [{ issuer: idp.issuer, subjects }],
        ...extra,
      }),
    );
  for (let role = 0; role < ROLES - 1; role++) template(`load-${role}`, role);
  // One role's tasks rotate a secret when they end, so `secrets` faults have calls to fail.
  template(`load-${ROLES - 1}`, ROLES - 1, {
    secrets: [
      { arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:jitv-load/db-AbCdEf", rotateOnEnd: true },
    ],
  });
  template("load-capped", 0, { maxActivePerAgent: MAX_ACTIVE });

  const sandbox = await startSandbox({
    port: 0,
    issuerPort: 0,
    issuersFile: join(dir, "issuers.json"),
    templatesDir: join(dir, "templates"),
    stateFile: join(dir, "state.json"),
    logger: new Logger({ serviceName: "jitv-load", logLevel: "SILENT" }),
    vendRate: VEND_RATE,
    ...(options.faults ? { faults: options.faults } : {}),
  });
  const adminClient = sandbox.state.clients.admin;
  if (!adminClient) throw new Error("no sandbox admin");
  let admin = { token: "", at: Number.NEGATIVE_INFINITY };
  const adminToken = async () => {
    if (performance.now() - admin.at > 60_000) {
      admin = {
        token: await fetchClientCredentialsToken({
          tokenEndpoint: adminClient.tokenEndpoint,
          clientId: "admin",
          clientSecret: adminClient.secret,
        }),
        at: performance.now(),
      };
    }
    return admin.token;
  };

  // Burst vends are counted apart: queued all at once, their latency says nothing about a vend's.
  const latencies = {
    vend: [] as number[],
    refresh: [] as number[],
    complete: [] as number[],
    revoke: [] as number[],
    burst: [] as number[],
  };
  const statuses = { vend: {}, refresh: {}, complete: {}, revoke: {}, burst: {} } as Record<
    keyof typeof latencies,
    Record<string, number>
  >;
  /** One API call, timed and counted; network failures count as status 0. */
  const call = async (kind: keyof typeof latencies, path: string, bearer: string, body?: unknown) => {
    const t0 = performance.now();
    const res = await fetch(`${sandbox.apiUrl}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
      body: JSON.stringify(body ?? {}),
    }).catch(() => undefined);
    const json = res ? ((await res.json().catch(() => ({}))) as { taskId?: string }) : {};
    latencies[kind].push(performance.now() - t0);
    const status = res?.status ?? 0;
    statuses[kind][status] = (statuses[kind][status] ?? 0) + 1;
    return { status, json };
  };
  const agentToken = (agent: string) => idp.sign({ sub: agent });

  const ended = new Map<string, number>(); // taskId → role
  const live = new Map<string, number>();
  let endAt = 0; // set once warm
  const agentLoop = async (agent: string, n: number) => {
    for (let cycle = 0; performance.now() < endAt; cycle++) {
      const role = (n + cycle) % ROLES;
      const vend = await call("vend", "/v1/tasks", await agentToken(agent), { template: `load-${role}` });
      if (vend.status !== 201) continue;
      const taskId = vend.json.taskId as string;
      await call("refresh", `/v1/tasks/${taskId}/credentials`, await agentToken(agent));
      if (cycle % 4 === 3) {
        live.set(taskId, role);
        continue;
      }
      const end =
        cycle % 2 === 0
          ? await call("complete", `/v1/tasks/${taskId}/complete`, await agentToken(agent))
          : await call("revoke", `/v1/tasks/${taskId}/revoke`, await adminToken(), { reason: "load run" });
      // A refused end (an injected fault) leaves the task running: it must then stay allowed.
      (end.status === 200 ? ended : live).set(taskId, role);
    }
  };

  // The bursts run under the agents' load: all requests at once from one fresh agent each.
  const rateBurst = async () => {
    const t0 = performance.now();
    const attempts = VEND_RATE.capacity + 20;
    const tokens = await Promise.all(Array.from({ length: attempts }, () => agentToken("burst-rate")));
    const answers = await Promise.all(
      tokens.map((t) => call("burst", "/v1/tasks", t, { template: "load-1" })),
    );
    const seconds = (performance.now() - t0) / 1000;
    for (const a of answers) if (a.status === 201) live.set(a.json.taskId as string, 1);
    const allowed = answers.filter((a) => a.status === 201).length;
    const refilledAtMost = Math.floor(VEND_RATE.refillPerSecond * seconds) + 1;
    // Exact without faults; under faults, never more than the bucket holds.
    const held = options.faults
      ? allowed <= VEND_RATE.capacity + refilledAtMost
      : allowed >= VEND_RATE.capacity && allowed <= VEND_RATE.capacity + refilledAtMost;
    return { attempts, allowed, capacity: VEND_RATE.capacity, refilledAtMost, held };
  };
  const capBurst = async () => {
    const attempts = 10;
    const tokens = await Promise.all(Array.from({ length: attempts }, () => agentToken("burst-cap")));
    const answers = await Promise.all(
      tokens.map((t) => call("burst", "/v1/tasks", t, { template: "load-capped" })),
    );
    const won = answers.filter((a) => a.status === 201).map((a) => a.json.taskId as string);
    for (const taskId of won) live.set(taskId, 0);
    let freedSlotAllowed = false;
    let thenRefused = false;
    const first = won[0];
    if (first) {
      const done = await call("complete", `/v1/tasks/${first}/complete`, await agentToken("burst-cap"));
      if (done.status === 200) {
        live.delete(first);
        ended.set(first, 0);
      }
      const next = await call("vend", "/v1/tasks", await agentToken("burst-cap"), {
        template: "load-capped",
      });
      freedSlotAllowed = next.status === 201;
      if (freedSlotAllowed) live.set(next.json.taskId as string, 0);
      const over = await call("vend", "/v1/tasks", await agentToken("burst-cap"), {
        template: "load-capped",
      });
      thenRefused = over.status === 429;
      if (over.status === 201) live.set(over.json.taskId as string, 0);
    }
    const held = options.faults
      ? won.length <= MAX_ACTIVE
      : won.length === MAX_ACTIVE && freedSlotAllowed && thenRefused;
    return { max: MAX_ACTIVE, attempts, allowed: won.length, freedSlotAllowed, thenRefused, held };
  };

  try {
    // Warm up (Cedar, the JWKS cache, the state machine engine): cold starts are not the load.
    sandbox.faults.disarm();
    const warm = await call("vend", "/v1/tasks", await agentToken("burst-cap"), { template: "load-0" });
    if (warm.status !== 201) throw new Error(`warm-up vend answered ${warm.status}`);
    sandbox.faults.arm();
    live.set(warm.json.taskId as string, 0);
    for (const kind of Object.keys(latencies) as Array<keyof typeof latencies>) {
      latencies[kind].length = 0;
      statuses[kind] = {};
    }
    endAt = performance.now() + options.seconds * 1000;
    const [rateLimit, maxActive] = await Promise.all([
      rateBurst(),
      capBurst(),
      ...agentIds.map((agent, n) => agentLoop(agent, n)),
    ]);

    // The faults stop; whatever they broke must heal: ended tasks denied, live ones allowed.
    const injected = { ...sandbox.faults.injected };
    sandbox.faults.disarm();
    const admin = await adminToken();
    const decision = async (taskId: string, role: number) => {
      const res = await fetch(`${sandbox.apiUrl}/v1/sandbox/simulate`, {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: JSON.stringify({ taskId, ...READ(role) }),
      });
      return ((await res.json()) as { decision?: string }).decision;
    };
    const status = async (taskId: string) =>
      (
        (await sandbox.doc.send(new GetCommand({ TableName: SANDBOX_TABLE, Key: taskKey(taskId) }))).Item as
          | Task
          | undefined
      )?.status;
    let backstopped = 0;
    let pending = [...ended];
    const settleFrom = performance.now();
    const settleBy = settleFrom + SETTLE_MS;
    while (pending.length > 0 && performance.now() < settleBy) {
      const next: typeof pending = [];
      for (const [taskId, role] of pending) {
        if ((await decision(taskId, role)) === "ExplicitlyDenied") continue;
        // Revocation failed after every retry while IAM failed: the task's TTL lease backstop,
        // run now rather than at its deadline 15 minutes away.
        if ((await status(taskId)) === "revocation_failed") {
          await sandbox.lifecycle.backstop({ taskId });
          backstopped++;
        }
        next.push([taskId, role]);
      }
      pending = next;
      if (pending.length > 0) await new Promise((r) => setTimeout(r, 500));
    }
    const settleSeconds = Number(((performance.now() - settleFrom) / 1000).toFixed(1));
    let liveNotAllowed = 0;
    for (const [taskId, role] of live) if ((await decision(taskId, role)) !== "Allowed") liveNotAllowed++;

    const all = Object.values(statuses).flatMap((s) => Object.entries(s));
    const count = (pred: (status: number) => boolean) =>
      all.filter(([s]) => pred(Number(s))).reduce((sum, [, n]) => sum + n, 0);
    const anyInjected = Object.values(injected).some((n) => n > 0);
    const unexpected5xx = count((s) => s >= 500 && (s !== 503 || !anyInjected)) + count((s) => s === 0);
    const lost = { endedNotDenied: pending.length, liveNotAllowed };
    return {
      agents: options.agents,
      seconds: options.seconds,
      faults: options.faults ?? {},
      injected,
      calls: {
        vend: stats(latencies.vend, statuses.vend),
        refresh: stats(latencies.refresh, statuses.refresh),
        complete: stats(latencies.complete, statuses.complete),
        revoke: stats(latencies.revoke, statuses.revoke),
        burst: stats(latencies.burst, statuses.burst),
      },
      unexpected5xx,
      tasks: { ended: ended.size, live: live.size },
      lost,
      backstopped,
      settleSeconds,
      rateLimit,
      maxActive,
      ok:
        unexpected5xx === 0 &&
        lost.endedNotDenied === 0 &&
        lost.liveNotAllowed === 0 &&
        rateLimit.held &&
        maxActive.held,
    };
  } finally {
    await sandbox.close();
    await idp.close();
  }
}

function stats(ms: number[], statuses: Record<string, number>): CallStats {
  const sorted = [...ms].sort((a, b) => a - b);
  const q = (p: number) =>
    Number((sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0).toFixed(1));
  return { count: ms.length, p50Ms: q(0.5), p99Ms: q(0.99), statuses };
}

function report(r: LoadResult): string {
  const lines = [
    `load: ${r.agents} agents × ${r.seconds} s on ${ROLES} roles${Object.keys(r.faults).length ? `, faults ${JSON.stringify(r.faults)} (injected ${JSON.stringify(r.injected)})` : ""}`,
    ...Object.entries(r.calls).map(
      ([name, s]) =>
        `  ${name.padEnd(9)} n=${String(s.count).padEnd(6)} p50=${s.p50Ms} ms  p99=${s.p99Ms} ms  answers ${JSON.stringify(s.statuses)}`,
    ),
    `  5xx not injected: ${r.unexpected5xx}`,
    `  tasks: ${r.tasks.ended} ended, ${r.tasks.live} live; lost: ${r.lost.endedNotDenied} ended but allowed, ${r.lost.liveNotAllowed} live but denied${r.backstopped ? ` (${r.backstopped} revoked by the lease backstop after IAM failures)` : ""}`,
    `  every ended task denied ${r.settleSeconds} s after the load stopped`,
    `  vend rate: ${r.rateLimit.allowed} of ${r.rateLimit.attempts} at once allowed (bucket ${r.rateLimit.capacity}, refill ≤ ${r.rateLimit.refilledAtMost}) — ${r.rateLimit.held ? "held" : "BROKEN"}`,
    `  maxActivePerAgent ${r.maxActive.max}: ${r.maxActive.allowed} of ${r.maxActive.attempts} at once allowed; freed slot reused: ${r.maxActive.freedSlotAllowed}, next refused: ${r.maxActive.thenRefused} — ${r.maxActive.held ? "held" : "BROKEN"}`,
    `  ${r.ok ? "OK" : "INVARIANT BROKEN"}`,
  ];
  return `${lines.join("\n")}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      agents: { type: "string", default: "50" },
      seconds: { type: "string", default: "60" },
      faults: { type: "string" },
      json: { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  const agents = Number(values.agents);
  const seconds = Number(values.seconds);
  if (!Number.isInteger(agents) || agents < 1 || !(seconds > 0)) {
    throw new Error("usage: load.bench.ts [--agents N] [--seconds S] [--faults SPEC] [--json]");
  }
  // The sandbox's metrics are EMF lines on stdout; with --json, stdout carries only the result.
  const write = process.stdout.write.bind(process.stdout);
  if (values.json) process.stdout.write = process.stderr.write.bind(process.stderr) as typeof write;
  const result = await runLoad({
    agents,
    seconds,
    ...(values.faults ? { faults: parseFaultSpec(values.faults) } : {}),
  });
  process.stdout.write = write;
  write(values.json ? `${JSON.stringify(result)}\n` : report(result), () => process.exit(result.ok ? 0 : 1));
}

// Imported by the invariant test (vitest), it only exports runLoad.
if (!process.env.VITEST) await main();
