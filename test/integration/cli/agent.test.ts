import { execFile } from "node:child_process";
import { createServer } from "node:http";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { freePort } from "../../support/sandbox.js";

// The agent-side CLI as run from a shell: one line saying what to do next, and an exit status
// that says which failure it was (1 refused, 2 usage, 3 unreachable).

const cli = join(resolve(import.meta.dirname, "../../.."), "bin", "jitv.mjs");
const run = promisify(execFile);
const env = { PATH: process.env.PATH ?? "" };
const jitv = (...args: string[]) =>
  run(process.execPath, [cli, ...args], { env, timeout: 60_000 }).then(
    (ok) => ({ code: 0, ...ok }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );

describe("jitv (agent commands)", () => {
  it("answers a usage error with exit 2 and the command's usage, before looking for a token", async () => {
    const typo = await jitv("vend", "--purpse", "x");
    expect(typo).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("Unknown option '--purpse'; usage: jitv vend"),
    });
    // No JITV_TOKEN in the environment: the missing arguments are what it reports.
    const bare = await jitv("simulate");
    expect(bare).toMatchObject({
      code: 2,
      stderr: "jitv: usage: jitv simulate TASK_ID ACTION RESOURCE_ARN [--token T] [--api URL]\n",
    });
  });

  it("names an unreachable API and what to do, exit 3", async () => {
    const api = `http://127.0.0.1:${await freePort()}`;
    const res = await jitv("vend", "--template", "x", "--token", "t", "--api", api);
    expect(res).toMatchObject({
      code: 3,
      stderr: `jitv: cannot reach the jitv API at ${api} (ECONNREFUSED): start the sandbox with npm start, or point --api / JITV_API at your deployment\n`,
    });
  });

  it("shows the HTTP status and error code of a refusal on stderr, exit 1", async () => {
    const server = createServer((_req, res) => {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "not_found", message: "unknown template" } }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const { port } = server.address() as { port: number };
    try {
      const res = await jitv(
        "vend",
        "--template",
        "nope",
        "--token",
        "t",
        "--api",
        `http://127.0.0.1:${port}`,
      );
      expect(res).toMatchObject({ code: 1, stderr: "jitv: HTTP 404 not_found: unknown template\n" });
      expect(JSON.parse(res.stdout)).toEqual({ error: { code: "not_found", message: "unknown template" } });
    } finally {
      server.close();
    }
  });

  it("approves, denies and lists tasks without curl: the exact requests the API expects", async () => {
    const seen: { method: string; url: string; body: string; auth: string }[] = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => {
        body += chunk;
      });
      req.on("end", () => {
        seen.push({
          method: req.method ?? "",
          url: req.url ?? "",
          body,
          auth: req.headers.authorization ?? "",
        });
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ok: true }));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const { port } = server.address() as { port: number };
    const api = ["--token", "tok", "--api", `http://127.0.0.1:${port}`];
    try {
      expect((await jitv("task", "approve", "tsk_1", ...api)).code).toBe(0);
      expect((await jitv("task", "deny", "tsk_2", "--reason", "not now", ...api)).code).toBe(0);
      expect((await jitv("task", "deny", "tsk_3", ...api)).code).toBe(0);
      expect((await jitv("tasks", "list", "--status", "pending_approval", "--limit", "5", ...api)).code).toBe(
        0,
      );
      expect(seen).toEqual([
        { method: "POST", url: "/v1/tasks/tsk_1/approve", body: "", auth: "Bearer tok" },
        { method: "POST", url: "/v1/tasks/tsk_2/deny", body: '{"reason":"not now"}', auth: "Bearer tok" },
        { method: "POST", url: "/v1/tasks/tsk_3/deny", body: "", auth: "Bearer tok" },
        { method: "GET", url: "/v1/tasks?status=pending_approval&limit=5", body: "", auth: "Bearer tok" },
      ]);
      expect(await jitv("tasks", "show", ...api)).toMatchObject({
        code: 2,
        stderr: expect.stringContaining("usage: jitv tasks list"),
      });
    } finally {
      server.close();
    }
  });

  it("answers COMMAND --help with that command's lines of the help text, exit 0", async () => {
    const vend = await jitv("vend", "--help");
    expect(vend).toMatchObject({ code: 0, stdout: expect.stringContaining("jitv vend --template NAME") });
    expect(vend.stdout).not.toContain("jitv templates");
    const exec = await jitv("exec", "--help");
    expect(exec).toMatchObject({ code: 0, stdout: expect.stringContaining("jitv exec --template NAME") });
    // After `--`, --help is the command's: jitv goes on to vend (here: nothing listens, exit 3).
    const api = `http://127.0.0.1:${await freePort()}`;
    const run = await jitv("exec", "--template", "x", "--token", "t", "--api", api, "--", "node", "--help");
    expect(run).toMatchObject({ code: 3, stdout: "" });
    const task = await jitv("task", "--help");
    expect(task.stdout.split("\n").filter((line) => line.trim().startsWith("jitv task "))).toHaveLength(3);
  });
});
