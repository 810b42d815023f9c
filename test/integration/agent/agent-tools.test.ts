import { execFile, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { STSClient } from "@aws-sdk/client-sts";
import { fromProcess } from "@aws-sdk/credential-provider-process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { completeTask, type TaskCredentials, vendTask } from "../../../lib/agent/api.js";
import { type CachedTask, MemoryTaskStore } from "../../../lib/agent/cache.js";
import { fromJitv } from "../../../lib/agent/credentials.js";
import { taskCredentials } from "../../../lib/agent/session.js";
import type { Sandbox } from "../../../lib/sandbox/sandbox.js";
import { sandboxToken, startExampleSandbox } from "../../support/sandbox.js";

// The agent-side tools of CONTRACT.md section 8, each run as a user runs it (a child process, or
// the package's provider inside an AWS SDK client) against a real sandbox.

const root = resolve(import.meta.dirname, "../../..");
const cli = join(root, "bin", "jitv.mjs");
const template = "logs-read";

let sandbox: Sandbox;
let dir: string;

beforeAll(async () => {
  ({ sandbox, dir } = await startExampleSandbox(["logs-read.json", "prod-db-admin.json"], {
    vendRate: { capacity: 1000, refillPerSecond: 1000 },
  }));
});

afterAll(async () => {
  await sandbox?.close();
});

/** A fresh cache folder (as `$JITV_CACHE_DIR`) and a token command that counts its runs. */
function agentSetup() {
  const home = mkdtempSync(join(tmpdir(), "jitv-agent-home-"));
  const cache = join(home, "cache");
  const runs = join(home, "token-runs");
  writeFileSync(runs, "");
  const tokenCommand = join(home, "agent-token");
  writeFileSync(
    tokenCommand,
    `#!/bin/sh\necho run >> '${runs}'\nexec '${process.execPath}' '${cli}' token --agent demo-agent\n`,
    { mode: 0o755 },
  );
  const env = {
    PATH: process.env.PATH ?? "",
    JITV_STATE_FILE: join(dir, "state.json"),
    JITV_CACHE_DIR: cache,
  };
  return {
    cache,
    env,
    tokenCommand,
    tokenRuns: () => readFileSync(runs, "utf8").split("\n").filter(Boolean).length,
  };
}

type Run = { code: number; stdout: string; stderr: string };

function jitv(env: Record<string, string>, ...args: string[]): Promise<Run> {
  return promisify(execFile)(process.execPath, [cli, ...args], { env, timeout: 60_000 }).then(
    (ok) => ({ code: 0, ...ok }),
    (err: Run) => err,
  );
}

/** `jitv credential-process` for the logs of `service`, and its answer. */
async function credentialProcess(setup: ReturnType<typeof agentSetup>, service: string, purpose: string) {
  const res = await jitv(
    setup.env,
    "credential-process",
    "--template",
    template,
    "--param",
    `service=${service}`,
    "--purpose",
    purpose,
    "--api",
    sandbox.apiUrl,
    "--token-command",
    setup.tokenCommand,
  );
  expect(res).toMatchObject({ code: 0, stderr: "" });
  return JSON.parse(res.stdout) as { Version: number; AccessKeyId: string; Expiration: string };
}

/** Tasks in the inventory with this purpose (each test names its own) and status. */
async function tasksFor(purpose: string, status = "active"): Promise<{ taskId: string; status: string }[]> {
  const res = await fetch(`${sandbox.apiUrl}/v1/tasks?status=${status}`, {
    headers: { authorization: `Bearer ${await sandboxToken(sandbox, "admin")}` },
  });
  const { tasks } = (await res.json()) as { tasks: { taskId: string; status: string; purpose?: string }[] };
  return tasks.filter((task) => task.purpose === purpose);
}

function cacheEntry(cache: string): { file: string; entry: CachedTask } {
  const files = readdirSync(cache).filter((f) => f.startsWith("task-") && f.endsWith(".json"));
  expect(files).toHaveLength(1);
  const file = join(cache, files[0] as string);
  return { file, entry: JSON.parse(readFileSync(file, "utf8")) };
}

/** Rewrites the cache entry as a later moment would find it (the test's way to move time). */
function ageCacheEntry(cache: string, change: (entry: CachedTask) => CachedTask): void {
  const { file, entry } = cacheEntry(cache);
  writeFileSync(file, JSON.stringify(change(entry)), { mode: 0o600 });
}

const inFourMinutes = () => new Date(Date.now() + 4 * 60_000).toISOString();

describe("jitv credential-process", () => {
  it("answers from a private cache: three calls, one task, the token command run once", async () => {
    const setup = agentSetup();
    const purpose = "cache hit";
    const first = await credentialProcess(setup, "billing", purpose);
    expect(first).toMatchObject({ Version: 1, AccessKeyId: expect.stringMatching(/^JITVSANDBOX/) });
    expect(await credentialProcess(setup, "billing", purpose)).toEqual(first);
    expect(await credentialProcess(setup, "billing", purpose)).toEqual(first);
    expect(await tasksFor(purpose)).toHaveLength(1);
    expect(setup.tokenRuns()).toBe(1);
    // Other parameters are another task.
    expect((await credentialProcess(setup, "payments", purpose)).AccessKeyId).not.toBe(first.AccessKeyId);
    expect(await tasksFor(purpose)).toHaveLength(2);
    expect(statSync(setup.cache).mode & 0o777).toBe(0o700);
    for (const file of readdirSync(setup.cache))
      expect({ file, mode: statSync(join(setup.cache, file)).mode & 0o777 }).toEqual({ file, mode: 0o600 });
  });

  it("does not trust a cache entry others can read: a new task, and the entry is private again", async () => {
    const setup = agentSetup();
    const purpose = "leaked";
    const first = await credentialProcess(setup, "billing", purpose);
    chmodSync(cacheEntry(setup.cache).file, 0o644);
    expect((await credentialProcess(setup, "billing", purpose)).AccessKeyId).not.toBe(first.AccessKeyId);
    expect(await tasksFor(purpose)).toHaveLength(2);
    expect(statSync(cacheEntry(setup.cache).file).mode & 0o777).toBe(0o600);
  });

  it("refreshes within the same task when less than 5 minutes are left", async () => {
    const setup = agentSetup();
    const purpose = "refresh";
    const first = await credentialProcess(setup, "billing", purpose);
    const { entry } = cacheEntry(setup.cache);
    ageCacheEntry(setup.cache, (e) => ({
      ...e,
      credentials: { ...e.credentials, Expiration: inFourMinutes() },
    }));
    const second = await credentialProcess(setup, "billing", purpose);
    expect(second.AccessKeyId).not.toBe(first.AccessKeyId);
    expect(Date.parse(second.Expiration) - Date.now()).toBeGreaterThan(5 * 60_000);
    expect(await tasksFor(purpose)).toEqual([expect.objectContaining({ taskId: entry.taskId })]);
    expect(sandbox.broker.requests.filter((r) => r.roleSessionName === entry.taskId)).toHaveLength(2);
    expect(cacheEntry(setup.cache).entry.credentials.AccessKeyId).toBe(second.AccessKeyId);
  });

  it("starts a new task only once the cached one has ended", async () => {
    const setup = agentSetup();
    const purpose = "ended";
    await credentialProcess(setup, "billing", purpose);
    const { entry } = cacheEntry(setup.cache);
    // Completed: the refresh is refused (409), so a new task is vended.
    const complete = await jitv(
      { ...setup.env, JITV_TOKEN: await sandboxToken(sandbox, "demo-agent") },
      "task",
      "complete",
      entry.taskId,
      "--api",
      sandbox.apiUrl,
    );
    expect(complete.code).toBe(0);
    ageCacheEntry(setup.cache, (e) => ({
      ...e,
      credentials: { ...e.credentials, Expiration: inFourMinutes() },
    }));
    await credentialProcess(setup, "billing", purpose);
    const second = cacheEntry(setup.cache).entry;
    expect(second.taskId).not.toBe(entry.taskId);
    // Past its deadline: a new task without asking for a refresh first.
    ageCacheEntry(setup.cache, (e) => ({
      ...e,
      expiresAt: new Date(Date.now() - 1000).toISOString(),
      credentials: { ...e.credentials, Expiration: inFourMinutes() },
    }));
    await credentialProcess(setup, "billing", purpose);
    const third = cacheEntry(setup.cache).entry;
    expect(third.taskId).not.toBe(second.taskId);
    expect(sandbox.broker.requests.filter((r) => r.roleSessionName === second.taskId)).toHaveLength(1);
    expect((await tasksFor(purpose, "completed")).map((t) => t.taskId)).toEqual([entry.taskId]);
    expect((await tasksFor(purpose)).map((t) => t.taskId).sort()).toEqual(
      [second.taskId, third.taskId].sort(),
    );
  });

  it("shares one task between five parallel invocations", async () => {
    const setup = agentSetup();
    const purpose = "parallel";
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => credentialProcess(setup, "billing", purpose)),
    );
    expect(new Set(answers.map((a) => a.AccessKeyId)).size).toBe(1);
    expect(await tasksFor(purpose)).toHaveLength(1);
  });

  it("keeps a task that waits for approval, and answers with it once approved", async () => {
    const setup = agentSetup();
    const purpose = "approval";
    const args = ["credential-process", "--template", "prod-db-admin", "--purpose", purpose];
    const run = () =>
      jitv(setup.env, ...args, "--api", sandbox.apiUrl, "--token-command", setup.tokenCommand);
    const first = await run();
    expect(first).toMatchObject({ code: 1, stdout: "" });
    expect(first.stderr).toMatch(/^jitv: task tsk_\w+ waits for approval: ask an approver [^\n]+\n$/);
    const taskId = /task (tsk_\w+)/.exec(first.stderr)?.[1] as string;
    // Asked again: the same task, not a second request for approval.
    expect(await run()).toMatchObject({ code: 1, stderr: first.stderr });
    expect(await tasksFor(purpose, "pending_approval")).toEqual([expect.objectContaining({ taskId })]);
    for (const approver of ["pat", "quinn"]) {
      const res = await fetch(`${sandbox.apiUrl}/v1/tasks/${taskId}/approve`, {
        method: "POST",
        headers: { authorization: `Bearer ${await sandboxToken(sandbox, approver)}` },
      });
      expect(res.status).toBe(200);
    }
    const approved = await run();
    expect(approved).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(approved.stdout).AccessKeyId).toBe(
      cacheEntry(setup.cache).entry.credentials.AccessKeyId,
    );
    expect(cacheEntry(setup.cache).entry.taskId).toBe(taskId);
    expect(await tasksFor(purpose)).toEqual([expect.objectContaining({ taskId })]);
  });

  it("reports a refusal in one stderr line with the HTTP status and error code, exit 1", async () => {
    const setup = agentSetup();
    const res = await jitv(
      setup.env,
      "credential-process",
      "--template",
      "no-such-template",
      "--api",
      sandbox.apiUrl,
      "--token-command",
      setup.tokenCommand,
    );
    expect(res.code).toBe(1);
    expect(res.stdout).toBe("");
    expect(res.stderr).toMatch(/^jitv: HTTP 404 not_found: [^\n]+\n$/);
    expect(res.stderr).not.toMatch(/eyJ/); // no token
  });

  it("works as the AWS SDK's own credential_process provider (fromProcess), one task for two resolutions", async () => {
    const setup = agentSetup();
    const purpose = "fromProcess";
    const config = join(setup.cache, "..", "aws-config");
    const env = Object.entries(setup.env)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    writeFileSync(
      config,
      `[profile jitv]\ncredential_process = env ${env} ${process.execPath} ${cli} credential-process --template ${template} --param service=billing --purpose ${purpose} --api ${sandbox.apiUrl} --token-command ${setup.tokenCommand}\n`,
    );
    const init = { profile: "jitv", configFilepath: config, filepath: join(setup.cache, "..", "none") };
    const first = await fromProcess(init)();
    const second = await fromProcess(init)();
    expect(first.accessKeyId).toMatch(/^JITVSANDBOX/);
    expect(second.accessKeyId).toBe(first.accessKeyId);
    expect(first.expiration).toBeInstanceOf(Date);
    expect(await tasksFor(purpose)).toHaveLength(1);
  });
});

describe("jitv/credentials fromJitv", () => {
  it("gives an AWS SDK client the task's credentials, sharing the cache with credential-process", async () => {
    const setup = agentSetup();
    const purpose = "fromJitv";
    let tokens = 0;
    const sts = new STSClient({
      region: "us-east-1",
      credentials: fromJitv({
        api: sandbox.apiUrl,
        template,
        parameters: { service: "billing" },
        purpose,
        tokenProvider: () => {
          tokens++;
          return sandboxToken(sandbox, "demo-agent");
        },
        cache: setup.cache,
      }),
    });
    const credentials = await sts.config.credentials();
    const { entry } = cacheEntry(setup.cache);
    expect(credentials).toMatchObject({
      accessKeyId: entry.credentials.AccessKeyId,
      sessionToken: entry.credentials.SessionToken,
      expiration: new Date(entry.credentials.Expiration),
    });
    expect(await tasksFor(purpose)).toEqual([expect.objectContaining({ taskId: entry.taskId })]);
    // The CLI, same agent and cache folder: the same task, no new vend.
    expect((await credentialProcess(setup, "billing", purpose)).AccessKeyId).toBe(credentials.accessKeyId);
    expect(await tasksFor(purpose)).toHaveLength(1);
    // A later resolution after the credentials aged refreshes within the task, with a fresh token.
    ageCacheEntry(setup.cache, (e) => ({
      ...e,
      credentials: { ...e.credentials, Expiration: inFourMinutes() },
    }));
    const provider = fromJitv({
      api: sandbox.apiUrl,
      template,
      parameters: { service: "billing" },
      tokenProvider: () => {
        tokens++;
        return sandboxToken(sandbox, "demo-agent");
      },
      cache: setup.cache,
    });
    const refreshed = await provider();
    expect(refreshed.accessKeyId).not.toBe(credentials.accessKeyId);
    expect(cacheEntry(setup.cache).entry.taskId).toBe(entry.taskId);
    expect(tokens).toBe(2);
    sts.destroy();
  });

  it("with cache: false, keeps one task in the process, even for parallel first calls", async () => {
    const purpose = "fromJitv in memory";
    const provider = fromJitv({
      api: sandbox.apiUrl,
      template,
      parameters: { service: "billing" },
      purpose,
      tokenProvider: () => sandboxToken(sandbox, "demo-agent"),
      cache: false,
    });
    const [a, b] = await Promise.all([provider(), provider()]);
    expect(b).toEqual(a);
    expect(await provider()).toEqual(a);
    expect(await tasksFor(purpose)).toHaveLength(1);
  });

  it("is importable as jitv/credentials from the package's exports", async () => {
    const script = `import { fromJitv } from "jitv/credentials"; console.log(typeof fromJitv);`;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: root,
    });
    expect(stdout).toBe("function\n");
  });
});

describe("jitv exec", () => {
  /** Runs `jitv exec … -- node -e SCRIPT`; resolves when jitv exits. */
  function exec(setup: ReturnType<typeof agentSetup>, purpose: string, script: string) {
    return spawn(
      process.execPath,
      [
        cli,
        "exec",
        "--template",
        template,
        "--param",
        "service=billing",
        "--purpose",
        purpose,
        "--api",
        sandbox.apiUrl,
        "--token-command",
        setup.tokenCommand,
        "--",
        process.execPath,
        "-e",
        script,
      ],
      { env: setup.env },
    );
  }

  function outcome(child: ReturnType<typeof spawn>): Promise<Run> {
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr?.on("data", (chunk) => {
      stderr += chunk;
    });
    return new Promise((r) => child.on("close", (code) => r({ code: code ?? -1, stdout, stderr })));
  }

  async function taskStatus(taskId: string): Promise<string> {
    const res = await fetch(`${sandbox.apiUrl}/v1/tasks/${taskId}`, {
      headers: { authorization: `Bearer ${await sandboxToken(sandbox, "admin")}` },
    });
    return ((await res.json()) as { status: string }).status;
  }

  it("runs the command with the task's credentials and a guarded endpoint, then completes the task", async () => {
    const setup = agentSetup();
    const script = `(async () => {
      const e = process.env;
      const uri = e.AWS_CONTAINER_CREDENTIALS_FULL_URI;
      const withToken = await fetch(uri, { headers: { authorization: e.AWS_CONTAINER_AUTHORIZATION_TOKEN } });
      const without = await fetch(uri);
      const wrong = await fetch(uri, { headers: { authorization: "x".repeat(43) } });
      console.log(JSON.stringify({
        key: e.AWS_ACCESS_KEY_ID, secret: e.AWS_SECRET_ACCESS_KEY, session: e.AWS_SESSION_TOKEN,
        task: e.JITV_TASK_ID, uri, endpoint: await withToken.json(), without: without.status, wrong: wrong.status,
      }));
      process.exit(7);
    })()`;
    const res = await outcome(exec(setup, "exec env", script));
    expect(res).toMatchObject({ code: 7, stderr: "" });
    const seen = JSON.parse(res.stdout);
    expect(seen).toMatchObject({
      key: expect.stringMatching(/^JITVSANDBOX/),
      secret: expect.stringMatching(/^jitv-sandbox-not-aws-/),
      session: expect.stringMatching(/^jitv-sandbox-session:/),
      task: expect.stringMatching(/^tsk_/),
      uri: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\//),
      without: 401,
      wrong: 401,
    });
    expect(seen.endpoint).toEqual({
      AccessKeyId: seen.key,
      SecretAccessKey: seen.secret,
      Token: seen.session,
      Expiration: expect.any(String),
    });
    expect(await tasksFor("exec env")).toEqual([]);
    expect(await tasksFor("exec env", "completed")).toEqual([expect.objectContaining({ taskId: seen.task })]);
    expect(await taskStatus(seen.task)).toBe("completed");
  });

  it("forwards SIGTERM to the command, completes the task and exits 128+15", async () => {
    const setup = agentSetup();
    const child = exec(
      setup,
      "exec signal",
      "console.log(process.env.JITV_TASK_ID); setInterval(() => {}, 1000)",
    );
    const done = outcome(child);
    const taskId = await new Promise<string>((r) =>
      child.stdout?.once("data", (line) => r(String(line).trim())),
    );
    child.kill("SIGTERM");
    expect(await done).toMatchObject({ code: 143 });
    expect(await taskStatus(taskId)).toBe("completed");
  });

  it("refreshes the command's task within it, and never starts another once it has ended", async () => {
    // What the endpoint answers with: the task's credentials, from a store that holds only that task.
    const token = () => sandboxToken(sandbox, "demo-agent");
    const request = { template, parameters: { service: "billing" }, purpose: "exec refresh" };
    const vended = await vendTask(sandbox.apiUrl, await token(), request);
    const store = new MemoryTaskStore({
      taskId: vended.taskId,
      expiresAt: vended.expiresAt,
      credentials: { ...(vended.credentials as TaskCredentials), Expiration: inFourMinutes() },
    });
    const session = { api: sandbox.apiUrl, request, token, store, renew: false };
    const refreshed = await taskCredentials(session);
    expect(refreshed.taskId).toBe(vended.taskId);
    expect(refreshed.credentials.AccessKeyId).not.toBe(vended.credentials?.AccessKeyId);
    expect(await taskCredentials(session)).toEqual(refreshed); // fresh now: no call
    await completeTask(sandbox.apiUrl, await token(), vended.taskId);
    await store.write({
      ...refreshed,
      credentials: { ...refreshed.credentials, Expiration: inFourMinutes() },
    });
    await expect(taskCredentials(session)).rejects.toMatchObject({ status: 409, code: "conflict" });
    expect(await tasksFor("exec refresh")).toEqual([]);
    expect(sandbox.broker.requests.filter((r) => r.roleSessionName === vended.taskId)).toHaveLength(2);
  });

  it("needs a command after --, exit 2", async () => {
    const setup = agentSetup();
    const res = await jitv(setup.env, "exec", "--template", template, "--api", sandbox.apiUrl);
    expect(res).toMatchObject({ code: 2, stderr: expect.stringContaining("usage: jitv exec") });
  });
});
