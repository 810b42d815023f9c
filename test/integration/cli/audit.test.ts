import { execFile } from "node:child_process";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sandbox } from "../../../lib/sandbox/sandbox.js";
import { sandboxToken, sandboxVend, startExampleSandbox } from "../../support/sandbox.js";

// `jitv audit` as run from a shell against the sandbox: its GET /v1/sandbox/audit route, admin only.

const cli = join(resolve(import.meta.dirname, "../../.."), "bin", "jitv.mjs");
const run = promisify(execFile);
let sandbox: Sandbox;
let before: string;

/** `jitv audit …` with `token` in $JITV_TOKEN; no log groups, so the sandbox answers. */
const audit = (token: string, ...args: string[]) =>
  run(process.execPath, [cli, "audit", ...args, "--api", sandbox.apiUrl], {
    env: { PATH: process.env.PATH ?? "", JITV_TOKEN: token },
    timeout: 60_000,
  }).then(
    (ok) => ({ code: 0, ...ok }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );

/** The tab-separated columns of each output line. */
const rows = (stdout: string) =>
  stdout
    .trim()
    .split("\n")
    .map((line) => line.split("\t"));

async function vend(): Promise<string> {
  const res = await sandboxVend(sandbox, "demo-agent", {
    template: "s3-reports-read",
    purpose: "audit test",
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { taskId: string }).taskId;
}

beforeAll(async () => {
  ({ sandbox } = await startExampleSandbox(["s3-reports-read.json"]));
  before = new Date().toISOString();
});

afterAll(async () => {
  await sandbox?.close();
});

describe("jitv audit against the sandbox", () => {
  it("reads back a task's events after a vend and a complete, and only that task's", async () => {
    const done = await vend();
    const other = await vend();
    const completed = await fetch(`${sandbox.apiUrl}/v1/tasks/${done}/complete`, {
      method: "POST",
      headers: { authorization: `Bearer ${await sandboxToken(sandbox, "demo-agent")}` },
    });
    expect(completed.status).toBe(200);
    const admin = await sandboxToken(sandbox, "admin");

    const res = await audit(admin, "--task", done);
    expect(res).toMatchObject({ code: 0, stderr: "" });
    const lines = rows(res.stdout);
    const events = lines.map(([, event]) => event);
    expect(events.slice(0, 3)).toEqual(["vend.allowed", "credentials.issued", "task.completed"]);
    for (const [at, , agent, user, tenant, task] of lines) {
      expect(Date.parse(at ?? "")).not.toBeNaN();
      expect([agent, user, tenant, task]).toEqual(["demo-agent", "-", "-", done]);
    }
    expect(lines[0]?.[6]).toContain("template=s3-reports-read");
    expect(res.stdout).not.toContain(other);

    const json = JSON.parse((await audit(admin, "--task", other, "--json")).stdout) as {
      events: { event: string; taskId: string; agent: { id: string } }[];
    };
    expect(json.events.map((e) => e.event).slice(0, 2)).toEqual(["vend.allowed", "credentials.issued"]);
    expect(json.events.every((e) => e.taskId === other && e.agent.id === "demo-agent")).toBe(true);

    // By agent and time: both tasks.
    const byAgent = rows((await audit(admin, "--agent", "demo-agent", "--since", before)).stdout);
    expect(new Set(byAgent.map((r) => r[5]))).toEqual(new Set([done, other]));
    // The limit keeps the newest (of the task still active, whose trail is not growing).
    const all = rows((await audit(admin, "--task", other)).stdout);
    expect(all.length).toBeGreaterThan(1);
    expect(rows((await audit(admin, "--task", other, "--limit", "1")).stdout)).toEqual([all.at(-1)]);
  });

  it("answers 403 to a token that is not an admin's, exit 1", async () => {
    const res = await audit(await sandboxToken(sandbox, "demo-agent"), "--since", "1h");
    expect(res).toMatchObject({
      code: 1,
      stdout: "",
      stderr: "jitv: HTTP 403 forbidden: only admins may read the audit trail\n",
    });
  });

  it("refuses an unsafe filter before any request, exit 2", async () => {
    const res = await audit("unused", "--agent", 'a" | display @message');
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/^jitv: agent: must be 1\.\.256 letters, digits or/);
  });
});
