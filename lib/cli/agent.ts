import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs, promisify } from "node:util";
import {
  ApiError,
  type ApiResponse,
  ApiUnreachableError,
  apiRequest,
  type VendRequest,
} from "../agent/api.js";
import {
  type AgentIdentity,
  defaultCacheDir,
  FileTaskStore,
  readIdentityHint,
  tokenIdentity,
  writeIdentityHint,
} from "../agent/cache.js";
import { ApprovalPendingError, spendingFirst, taskCredentials } from "../agent/session.js";

const DEFAULT_API = "http://127.0.0.1:8787";

/**
 * A CLI failure with its exit status: 1 the API refused, 2 a usage error, 3 the API unreachable
 * (documented in `jitv help`). The message is one line saying what to do next.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 | 3,
  ) {
    super(message);
    this.name = "CliError";
  }
}

const USAGE: Record<string, string> = {
  vend: "usage: jitv vend --template NAME [--param k=v]... [--ttl SECONDS] [--purpose TEXT] [--subject-token T] [--idempotency-key K] [--token T] [--api URL]",
  "credential-process":
    "usage: jitv credential-process --template NAME --token-command CMD [--param k=v]... [--ttl SECONDS] [--purpose TEXT] [--api URL]",
  exec: "usage: jitv exec --template NAME [--param k=v]... [--ttl SECONDS] [--purpose TEXT] [--token-command CMD] [--api URL] -- COMMAND [ARG]...",
  task: "usage: jitv task get|refresh|complete|revoke|approve|deny TASK_ID [--reason TEXT] [--token T] [--api URL]",
  tasks: "usage: jitv tasks list [--status S] [--template T] [--limit N] [--token T] [--api URL]",
  simulate: "usage: jitv simulate TASK_ID ACTION RESOURCE_ARN [--token T] [--api URL]",
};

/** `jitv vend`, `credential-process`, `exec`, `task …`, `tasks list` and `simulate`: the agent side of the API. */
export async function agentCommand(command: string, argv: string[]): Promise<number> {
  const usage = USAGE[command] ?? "usage: jitv help";
  // `jitv exec … -- COMMAND…`: everything after the first `--` is the command, untouched.
  const dashes = command === "exec" ? argv.indexOf("--") : -1;
  const child = dashes < 0 ? [] : argv.slice(dashes + 1);
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(dashes < 0 ? argv : argv.slice(0, dashes));
  } catch (error) {
    // parseArgs' own wording names the option; add the command's usage.
    throw new CliError(`${(error as Error).message.split(/\.\s/)[0]}; ${usage}`, 2);
  }
  const { values, positionals } = parsed;
  const api = (values.api ?? process.env.JITV_API ?? DEFAULT_API).replace(/\/+$/, "");
  // Arguments are checked before the token is looked for.
  if (command === "task") {
    const [sub, taskId] = positionals;
    if (!sub || !taskId || !["get", "refresh", "complete", "revoke", "approve", "deny"].includes(sub))
      throw new CliError(usage, 2);
  } else if (command === "tasks") {
    if (positionals[0] !== "list") throw new CliError(usage, 2);
  } else if (command === "simulate") {
    if (positionals.length < 3) throw new CliError(usage, 2);
  } else if (!values.template) {
    throw new CliError(`--template is required; ${usage}`, 2);
  } else if (command === "exec" && child.length === 0) {
    throw new CliError(`a command to run is required after --; ${usage}`, 2);
  }

  if (command === "credential-process" || command === "exec") {
    const request = vendRequest(values, usage);
    try {
      if (command === "exec") {
        const { execWithTask } = await import("../agent/exec.js");
        return await execWithTask({
          api,
          request,
          token: () => resolveToken(values),
          command: child,
          warn: (line) => process.stderr.write(`jitv: ${line}\n`),
        });
      }
      return await credentialProcess(api, request, values);
    } catch (error) {
      throw cliError(error);
    }
  }

  const token = await resolveToken(values);
  const call = async (
    path: string,
    options: { method?: string; body?: unknown; idempotencyKey?: string } = {},
  ) => {
    try {
      return await apiRequest(api, path, { token, ...options });
    } catch (error) {
      throw cliError(error);
    }
  };

  if (command === "task") {
    const [sub, taskId] = positionals;
    const path = taskId ? `/v1/tasks/${encodeURIComponent(taskId)}` : "";
    const routes: Record<string, () => Promise<ApiResponse>> = {
      get: async () => {
        const task = await call(path);
        // A sandbox (an API on this machine) also shows what it would have asked STS for.
        if (!task.ok || !isLoopback(api)) return task;
        const sts = await call(`/v1/sandbox/tasks/${encodeURIComponent(taskId ?? "")}/assume-role`);
        if (!sts.ok) return task;
        const { taskId: _, ...sandbox } = sts.body as Record<string, unknown>;
        return { ...task, body: { ...(task.body as Record<string, unknown>), sandbox } };
      },
      refresh: () => call(`${path}/credentials`, { method: "POST" }),
      complete: () => call(`${path}/complete`, { method: "POST" }),
      revoke: () => call(`${path}/revoke`, { method: "POST", body: { reason: values.reason ?? "" } }),
      approve: () => call(`${path}/approve`, { method: "POST" }),
      deny: () =>
        call(`${path}/deny`, {
          method: "POST",
          ...(values.reason === undefined ? {} : { body: { reason: values.reason } }),
        }),
    };
    const run = sub ? routes[sub] : undefined;
    if (!run) throw new CliError(usage, 2);
    return print(await run());
  }
  if (command === "tasks") {
    const filters: [string, string][] = [];
    for (const key of ["status", "template", "limit"] as const) {
      const value = values[key];
      if (value !== undefined) filters.push([key, value]);
    }
    const query = new URLSearchParams(filters).toString();
    return print(await call(`/v1/tasks${query ? `?${query}` : ""}`));
  }
  if (command === "simulate") {
    const [taskId, action, resource] = positionals;
    return print(await call("/v1/sandbox/simulate", { method: "POST", body: { taskId, action, resource } }));
  }

  const request = vendRequest(values, usage);
  const res = await call("/v1/tasks", {
    method: "POST",
    body: { ...request, ...(values["subject-token"] ? { subjectToken: values["subject-token"] } : {}) },
    ...(values["idempotency-key"] ? { idempotencyKey: values["idempotency-key"] } : {}),
  });
  return print(res);
}

type Values = ReturnType<typeof parse>["values"];

/**
 * `jitv credential-process`: the cached task's credentials in the `credential_process` Version 1
 * format. The cache entry is chosen by the agent the token names; with `--token-command`, the
 * agent that command named last time, so a cache hit runs no command at all.
 */
async function credentialProcess(api: string, request: VendRequest, values: Values): Promise<number> {
  const dir = defaultCacheDir();
  const command = values["token-command"];
  const hintSource = command === undefined ? undefined : `token-command:${command}`;
  // A token fetched only to learn the agent is spent on the API call that follows, if any.
  let unused: string | undefined;
  let agent: AgentIdentity | undefined = hintSource ? await readIdentityHint(dir, hintSource) : undefined;
  if (!agent) {
    unused = await resolveToken(values);
    agent = tokenIdentity(unused);
    if (hintSource) await writeIdentityHint(dir, hintSource, agent);
  }
  const store = new FileTaskStore(dir, {
    api,
    agent,
    template: request.template,
    ...(request.parameters ? { parameters: request.parameters } : {}),
  });
  const task = await taskCredentials({
    api,
    request,
    store,
    renew: true,
    token: spendingFirst(unused, () => resolveToken(values)),
  });
  process.stdout.write(
    `${JSON.stringify({
      Version: 1,
      AccessKeyId: task.credentials.AccessKeyId,
      SecretAccessKey: task.credentials.SecretAccessKey,
      SessionToken: task.credentials.SessionToken,
      Expiration: task.credentials.Expiration,
    })}\n`,
  );
  return 0;
}

function vendRequest(values: Values, usage: string): VendRequest {
  const parameters: Record<string, string> = {};
  for (const pair of values.param ?? []) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new CliError(`--param expects NAME=VALUE, got "${pair}"; ${usage}`, 2);
    parameters[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const ttlSeconds = values.ttl === undefined ? undefined : Number(values.ttl);
  if (ttlSeconds !== undefined && !Number.isInteger(ttlSeconds))
    throw new CliError(`--ttl expects whole seconds; ${usage}`, 2);
  return {
    template: values.template as string,
    ...(Object.keys(parameters).length ? { parameters } : {}),
    ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
    ...(values.purpose ? { purpose: values.purpose } : {}),
  };
}

/** The client's failures as the CLI reports them: 1 the API refused, 3 the API unreachable. */
function cliError(error: unknown): unknown {
  if (error instanceof ApiUnreachableError)
    return new CliError(
      `${error.message}: start the sandbox with npm start, or point --api / JITV_API at your deployment`,
      3,
    );
  if (error instanceof ApiError || error instanceof ApprovalPendingError)
    return new CliError(error.message, 1);
  return error;
}

/** Whether the API is on this machine (the sandbox): only then does `task get` ask its sandbox routes. */
function isLoopback(api: string): boolean {
  return ["127.0.0.1", "localhost", "[::1]"].includes(new URL(api).hostname);
}

/** Prints the answer; a refusal also gets one line on stderr with its HTTP status (exit 1). */
function print(res: ApiResponse): number {
  process.stdout.write(`${JSON.stringify(res.body, null, 2)}\n`);
  if (res.ok) return 0;
  process.stderr.write(`jitv: ${ApiError.from(res).message}\n`);
  return 1;
}

/** The agent token: `--token`, `--token-file` (read again each time), `--token-command` (run each time) or `$JITV_TOKEN`. */
async function resolveToken(values: Values): Promise<string> {
  if (values.token) return values.token;
  if (values["token-file"]) return readFileSync(values["token-file"], "utf8").trim();
  if (values["token-command"]) {
    try {
      const { stdout } = await promisify(execFile)("/bin/sh", ["-c", values["token-command"]], {
        timeout: 30_000,
      });
      return stdout.trim();
    } catch (error) {
      // Its output is not repeated: it may hold a token.
      const status = (error as { code?: unknown }).code;
      throw new CliError(`--token-command failed (${status ?? "no status"}): run it yourself to see why`, 2);
    }
  }
  const env = process.env.JITV_TOKEN;
  if (env) return env.trim();
  throw new CliError("no token: pass --token, --token-file, --token-command or set JITV_TOKEN", 2);
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      template: { type: "string" },
      param: { type: "string", multiple: true },
      ttl: { type: "string" },
      purpose: { type: "string" },
      "subject-token": { type: "string" },
      "idempotency-key": { type: "string" },
      token: { type: "string" },
      "token-file": { type: "string" },
      "token-command": { type: "string" },
      api: { type: "string" },
      reason: { type: "string" },
      status: { type: "string" },
      limit: { type: "string" },
    },
  });
}
