import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSandboxSessionToken } from "../../../lib/credentials/sandbox-broker.js";
import type { Sandbox } from "../../../lib/sandbox/sandbox.js";
import { sandboxToken, startExampleSandbox } from "../../support/sandbox.js";

// The GitHub Action run as the runner runs it: `node action/dist/main.js` and `post.js` with
// INPUT_* variables, the GITHUB_ENV / GITHUB_OUTPUT / GITHUB_STATE files and the runner's
// OIDC token service (here a local one handing out the sandbox's demo-agent tokens), against
// the sandbox.

const root = resolve(import.meta.dirname, "../../..");
const MAIN = join(root, "action", "dist", "main.js");
const POST = join(root, "action", "dist", "post.js");
const REQUEST_TOKEN = randomBytes(16).toString("hex");

let sandbox: Sandbox;
let tokenService: Server;
let tokenUrl: string;
let dir: string;
/** Every OIDC token the local token service handed out. */
const issuedTokens: string[] = [];

/** The runner's `ACTIONS_ID_TOKEN_REQUEST_URL` service: checks its bearer, the api-version it set and the audience. */
function startTokenService(): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const bearer = /^bearer (.+)$/i.exec(req.headers.authorization ?? "")?.[1];
    if (
      bearer !== REQUEST_TOKEN ||
      url.searchParams.get("api-version") !== "2.0" ||
      url.searchParams.get("audience") !== "jitv"
    ) {
      res.writeHead(403).end();
      return;
    }
    sandboxToken(sandbox, "demo-agent").then(
      (value) => {
        issuedTokens.push(value);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ count: 1, value }));
      },
      () => res.writeHead(500).end(),
    );
  });
  return new Promise((r) => server.listen(0, "127.0.0.1", () => r(server)));
}

beforeAll(async () => {
  ({ sandbox, dir } = await startExampleSandbox(["logs-read.json", "prod-db-admin.json"], {
    rolesDir: join(root, "examples", "roles"),
  }));
  tokenService = await startTokenService();
  const { port } = tokenService.address() as { port: number };
  tokenUrl = `http://127.0.0.1:${port}/_apis/token?api-version=2.0`;
});

afterAll(async () => {
  await new Promise((r) => tokenService?.close(r));
  await sandbox?.close();
});

/**
 * The runner's reading of a file command file: `name<<DELIMITER`, the value's lines, `DELIMITER`.
 * Anything else in the file fails the test.
 */
function readFileCommands(path: string): Map<string, string> {
  const values = new Map<string, string>();
  const lines = readFileSync(path, "utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const heredoc = /^([^<=]+)<<(.+)$/.exec(lines[i] ?? "");
    if (!heredoc) throw new Error(`not a name<<delimiter line: ${lines[i]}`);
    const [, name = "", delimiter] = heredoc;
    const end = lines.indexOf(delimiter ?? "", i + 1);
    if (end < 0) throw new Error(`unterminated value of ${name}`);
    values.set(name, lines.slice(i + 1, end).join("\n"));
    i = end;
  }
  return values;
}

interface StepResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly env: Map<string, string>;
  readonly output: Map<string, string>;
  readonly state: Map<string, string>;
}

/** The step's inputs as the runner passes them (action.yml's defaults included). */
function inputs(template: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    INPUT_API: sandbox.apiUrl,
    INPUT_TEMPLATE: template,
    INPUT_PARAMETERS: "",
    INPUT_PURPOSE: "",
    INPUT_TTL: "",
    INPUT_AUDIENCE: "jitv",
    "INPUT_APPROVAL-TIMEOUT": "600",
    ...extra,
  };
}

/**
 * Runs one step of the action in a child process with fresh file-command files, as the runner
 * does. `whileRunning` sees stdout as it comes (e.g. to approve a pending task).
 */
async function runStep(
  script: string,
  env: Record<string, string>,
  whileRunning?: (stdout: () => string) => Promise<void>,
): Promise<StepResult> {
  const step = mkdtempSync(join(dir, "step-"));
  const files = { GITHUB_ENV: "env", GITHUB_OUTPUT: "output", GITHUB_STATE: "state" };
  for (const name of Object.values(files)) writeFileSync(join(step, name), "");
  const child = spawn(process.execPath, [script], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      ACTIONS_ID_TOKEN_REQUEST_URL: tokenUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN,
      GITHUB_REPOSITORY: "octo-org/octo-repo",
      GITHUB_WORKFLOW: "deploy",
      GITHUB_JOB: "release",
      GITHUB_RUN_ID: "4242",
      ...Object.fromEntries(Object.entries(files).map(([name, file]) => [name, join(step, file)])),
      ...env,
    },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((r) => child.once("exit", r));
  try {
    await whileRunning?.(() => stdout);
  } catch (failure) {
    child.kill();
    throw failure;
  }
  const code = await exited;
  return {
    code,
    stdout,
    stderr,
    env: readFileCommands(join(step, files.GITHUB_ENV)),
    output: readFileCommands(join(step, files.GITHUB_OUTPUT)),
    state: readFileCommands(join(step, files.GITHUB_STATE)),
  };
}

/** The task as its agent sees it through the API. */
async function taskStatus(taskId: string): Promise<string> {
  const res = await fetch(`${sandbox.apiUrl}/v1/tasks/${taskId}`, {
    headers: { authorization: `Bearer ${await sandboxToken(sandbox, "demo-agent")}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { status: string }).status;
}

async function decide(taskId: string, decision: "approve" | "deny", as: string): Promise<void> {
  const res = await fetch(`${sandbox.apiUrl}/v1/tasks/${taskId}/${decision}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${await sandboxToken(sandbox, as)}`,
      "content-type": "application/json",
    },
    body: decision === "deny" ? JSON.stringify({ reason: "not during the freeze" }) : "{}",
  });
  expect(res.status).toBe(200);
}

/** Resolves once `text` is in the step's stdout. */
async function waitFor(stdout: () => string, text: string): Promise<void> {
  for (let i = 0; i < 300 && !stdout().includes(text); i++) await new Promise((r) => setTimeout(r, 100));
  if (!stdout().includes(text))
    throw new Error(`the step never printed ${JSON.stringify(text)}:\n${stdout()}`);
}

/** The task id main saved for post, read from its GITHUB_STATE file while it runs. */
function postState(result: StepResult): Record<string, string> {
  const taskId = result.state.get("task_id");
  if (taskId === undefined) throw new Error("main saved no task id");
  return { STATE_task_id: taskId };
}

/**
 * Asserts the three credentials were masked as soon as they arrived, before the step printed
 * anything more, and never shown otherwise; and that the job's OIDC tokens were masked too.
 */
function expectMasked(stdout: string, env: Map<string, string>): void {
  const lines = stdout.split("\n");
  const handedOver = lines.findIndex((line) => line.includes("is active until"));
  expect(handedOver).toBeGreaterThan(0);
  const maskLines = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"].map((name) => {
    const secret = env.get(name) ?? "";
    expect(secret.length).toBeGreaterThan(0);
    // The mask line is the only place the value ever appears.
    expect(stdout.split(secret)).toHaveLength(2);
    return lines.indexOf(`::add-mask::${secret}`);
  });
  expect(maskLines).toEqual([handedOver - 3, handedOver - 2, handedOver - 1]);
  for (const token of issuedTokens) {
    const shown = lines.filter((line) => line.includes(token));
    if (shown.length > 0) expect(shown).toEqual([`::add-mask::${token}`]);
  }
}

describe("the jitv GitHub Action", () => {
  it("vends with the job's OIDC token, masks and exports the credentials; post completes the task", async () => {
    const tokensBefore = issuedTokens.length;
    const main = await runStep(MAIN, inputs("logs-read", { INPUT_PARAMETERS: "\nservice = billing\n\n" }));
    expect(main.stderr).toBe("");
    expect(main.code).toBe(0);
    expect([...main.env.keys()]).toEqual([
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
      "JITV_TASK_ID",
    ]);
    const taskId = main.env.get("JITV_TASK_ID") ?? "";
    expect(taskId).toMatch(/^tsk_/);
    expect(main.output).toEqual(new Map([["task-id", taskId]]));
    expect(main.state).toEqual(new Map([["task_id", taskId]]));
    expectMasked(main.stdout, main.env);
    expect(issuedTokens.length).toBe(tokensBefore + 1);
    expect(main.stdout).toContain(`::add-mask::${issuedTokens.at(-1)}`);
    // The exported credentials are the task's, for the task the request described.
    expect(parseSandboxSessionToken(main.env.get("AWS_SESSION_TOKEN") ?? "")?.taskId).toBe(taskId);
    expect(await sandbox.core.tasks.get(taskId)).toMatchObject({
      status: "active",
      template: "logs-read",
      parameters: { service: "billing" },
      purpose: 'GitHub Actions octo-org/octo-repo workflow "deploy" job release run 4242',
    });
    expect(await taskStatus(taskId)).toBe("active");

    const post = await runStep(POST, { ...inputs("logs-read"), ...postState(main) });
    expect(post.code).toBe(0);
    expect(post.stdout).toContain(`jitv: task ${taskId} completed`);
    expect(post.stdout).not.toContain("::error::");
    expect(issuedTokens.length).toBe(tokensBefore + 2);
    expect(await taskStatus(taskId)).toBe("completed");

    // A second post (a re-run, or a task that ended on its own) says so and does not fail the job.
    const again = await runStep(POST, { ...inputs("logs-read"), ...postState(main) });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(
      `jitv: task ${taskId} is not active (the task is completed); nothing to complete.`,
    );
    expect(again.stdout).not.toMatch(/::(error|warning)::/);
  });

  it("fails with the HTTP status and error code of a refusal, and writes no credentials", async () => {
    const main = await runStep(MAIN, inputs("no-such-template"));
    expect(main.code).toBe(1);
    expect(main.stdout).toContain("::error::jitv vend: HTTP 404 not_found: unknown template");
    expect(main.env.size).toBe(0);
    expect(main.output.size).toBe(0);
    expect(main.state.size).toBe(0);
    // Post of a step that started nothing has nothing to do.
    const post = await runStep(POST, inputs("no-such-template"));
    expect(post.code).toBe(0);
    expect(post.stdout).toContain("nothing to complete");
  });

  it("fails closed without the job's id-token permission, naming it", async () => {
    const main = await runStep(MAIN, { ...inputs("logs-read"), ACTIONS_ID_TOKEN_REQUEST_URL: "" });
    expect(main.code).toBe(1);
    expect(main.stdout).toContain(
      "::error::jitv: this job cannot request an OIDC token: give it `permissions: id-token: write`",
    );
    expect(main.env.size).toBe(0);
    // A wrong parameters line is refused before any request.
    const bad = await runStep(MAIN, inputs("logs-read", { INPUT_PARAMETERS: "service=billing\n=oops" }));
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('::error::input "parameters" line 2: expected name=value');
  });

  it("waits for approval, says who must approve, and hands over the credentials once approved", async () => {
    let taskId = "";
    const main = await runStep(MAIN, inputs("prod-db-admin"), async (stdout) => {
      await waitFor(stdout, "jitv task approve");
      taskId = /jitv task approve (tsk_\w+)/.exec(stdout())?.[1] ?? "";
      expect(await taskStatus(taskId)).toBe("pending_approval");
      // The template's quorum is two staff approvers.
      await decide(taskId, "approve", "pat");
      await decide(taskId, "approve", "quinn");
    });
    expect(main.code).toBe(0);
    expect(main.stdout).toContain(
      `::notice::jitv: task ${taskId} (template "prod-db-admin") needs approval before it gets credentials: an approver of the template's zone, other than agent "demo-agent", runs "jitv task approve ${taskId}"`,
    );
    expect(main.stdout).toContain("jitv: waiting up to 600 s");
    expect(main.env.get("JITV_TASK_ID")).toBe(taskId);
    expect(parseSandboxSessionToken(main.env.get("AWS_SESSION_TOKEN") ?? "")?.taskId).toBe(taskId);
    expectMasked(main.stdout, main.env);
    expect(await taskStatus(taskId)).toBe("active");

    const post = await runStep(POST, { ...inputs("prod-db-admin"), ...postState(main) });
    expect(post.code).toBe(0);
    expect(await taskStatus(taskId)).toBe("completed");
  });

  it("fails the step when the task is denied or the wait runs out, with no credentials written", async () => {
    const denied = await runStep(MAIN, inputs("prod-db-admin"), async (stdout) => {
      await waitFor(stdout, "jitv task approve");
      const taskId = /jitv task approve (tsk_\w+)/.exec(stdout())?.[1] ?? "";
      await decide(taskId, "deny", "pat");
    });
    expect(denied.code).toBe(1);
    expect(denied.stdout).toMatch(/::error::jitv: task tsk_\w+ was not approved: it is denied/);
    expect(denied.env.size).toBe(0);
    const post = await runStep(POST, { ...inputs("prod-db-admin"), ...postState(denied) });
    expect(post.code).toBe(0);
    expect(post.stdout).toContain("(the task is denied); nothing to complete.");

    const late = await runStep(MAIN, inputs("prod-db-admin", { "INPUT_APPROVAL-TIMEOUT": "1" }));
    expect(late.code).toBe(1);
    expect(late.stdout).toMatch(
      /::error::jitv: task tsk_\w+ is still pending approval after 1 s \(input approval-timeout\)/,
    );
    expect(late.env.size).toBe(0);
  });
});
