import { execFile } from "node:child_process";
import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sandbox } from "../../../lib/sandbox/sandbox.js";
import type { Json } from "../../support/api-client.js";
import { sandboxToken, sandboxVend, startExampleSandbox } from "../../support/sandbox.js";

// `jitv task get` against the sandbox shows what the sandbox would have asked STS for: the rendered
// session policy and the exact AssumeRole input its broker recorded. Run as a user runs it.

const cli = join(resolve(import.meta.dirname, "../../.."), "bin", "jitv.mjs");
const run = promisify(execFile);
const jitv = (...args: string[]) =>
  run(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH ?? "" }, timeout: 60_000 }).then(
    (ok) => ({ code: 0, ...ok }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );

let dir: string;
let sandbox: Sandbox;

beforeAll(async () => {
  ({ sandbox, dir } = await startExampleSandbox(undefined, {
    policiesDir: resolve(import.meta.dirname, "../../../examples/policies"),
  }));
});

afterAll(async () => {
  await sandbox?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** `jitv task get ID` as `who`, parsed. */
async function taskGet(taskId: string, who: string) {
  const res = await jitv(
    "task",
    "get",
    taskId,
    "--api",
    sandbox.apiUrl,
    "--token",
    await sandboxToken(sandbox, who),
  );
  return { ...res, json: res.code === 0 ? (JSON.parse(res.stdout) as Json) : undefined };
}

describe("jitv task get against the sandbox", () => {
  it("adds the rendered session policy and the exact AssumeRole input of the latest credentials", async () => {
    expect(sandbox.warnings).toEqual([]); // the templates name this sandbox's issuer port
    const vend = await sandboxVend(sandbox, "demo-agent", {
      template: "logs-read",
      parameters: { service: "billing" },
    });
    expect(vend.status).toBe(201);
    const { taskId } = (await vend.json()) as { taskId: string };

    const first = await taskGet(taskId, "demo-agent");
    expect(first.code).toBe(0);
    const recorded = sandbox.broker.lastRequestFor(taskId);
    expect(recorded).toBeDefined();
    expect(first.json).toMatchObject({ taskId, status: "active", template: "logs-read" });
    expect(first.json.credentials).toBeUndefined();
    expect(first.json.sandbox).toEqual({
      sessionPolicy: JSON.parse(recorded?.policy ?? ""),
      assumeRole: {
        RoleArn: recorded?.roleArn,
        RoleSessionName: taskId,
        SourceIdentity: "demo-agent",
        Policy: recorded?.policy,
        Tags: expect.arrayContaining([
          { Key: "jitv:task", Value: taskId },
          { Key: "jitv:agent", Value: "demo-agent" },
          { Key: "jitv:template", Value: "logs-read" },
        ]),
        DurationSeconds: recorded?.durationSeconds,
      },
      assumeRoleCalls: 1,
    });
    // The policy the template rendered, with the parameter in place.
    expect(JSON.stringify(first.json.sandbox.sessionPolicy)).toContain("billing");

    // A refresh is one more AssumeRole, and the latest is shown.
    const refresh = await jitv(
      "task",
      "refresh",
      taskId,
      "--api",
      sandbox.apiUrl,
      "--token",
      await sandboxToken(sandbox, "demo-agent"),
    );
    expect(refresh.code).toBe(0);
    expect((await taskGet(taskId, "demo-agent")).json.sandbox.assumeRoleCalls).toBe(2);

    // An admin sees it too; another agent gets the task's 404, and nothing of the request.
    expect((await taskGet(taskId, "admin")).json.sandbox.assumeRole.RoleSessionName).toBe(taskId);
    const other = await taskGet(taskId, "ci-agent");
    expect(other).toMatchObject({ code: 1, stderr: expect.stringContaining("HTTP 404 not_found") });
    expect(other.stdout).not.toContain("assumeRole");
  });

  it("shows no AssumeRole input for a task still pending approval", async () => {
    const vend = await sandboxVend(sandbox, "demo-agent", { template: "prod-db-admin", purpose: "resize" });
    expect(vend.status).toBe(202);
    const { taskId } = (await vend.json()) as { taskId: string };
    const res = await taskGet(taskId, "demo-agent");
    expect(res.json).toMatchObject({
      status: "pending_approval",
      sandbox: { assumeRole: null, assumeRoleCalls: 0 },
    });
    expect(res.json.sandbox.sessionPolicy).toMatchObject({ Version: "2012-10-17" });
  });
});
