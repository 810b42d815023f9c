import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs, promisify } from "node:util";

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
    "usage: jitv credential-process --template NAME --token-command CMD [--param k=v]... [--api URL]",
  task: "usage: jitv task get|refresh|complete|revoke|approve|deny TASK_ID [--reason TEXT] [--token T] [--api URL]",
  tasks: "usage: jitv tasks list [--status S] [--template T] [--limit N] [--token T] [--api URL]",
  simulate: "usage: jitv simulate TASK_ID ACTION RESOURCE_ARN [--token T] [--api URL]",
};

/** `jitv vend`, `credential-process`, `task …` and `simulate`: the agent side of the API. */
export async function agentCommand(command: string, argv: string[]): Promise<number> {
  const usage = USAGE[command] ?? "usage: jitv help";
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
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
  }
  const token = await resolveToken(values);
  const call = (url: string, options: { method?: string; body?: unknown; idempotencyKey?: string } = {}) =>
    request(api, url, { token, ...options });

  if (command === "task") {
    const [sub, taskId] = positionals;
    const path = taskId ? `${api}/v1/tasks/${encodeURIComponent(taskId)}` : "";
    const routes: Record<string, () => Promise<Awaited<ReturnType<typeof call>>>> = {
      get: () => call(path),
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
    return print(await call(`${api}/v1/tasks${query ? `?${query}` : ""}`));
  }
  if (command === "simulate") {
    const [taskId, action, resource] = positionals;
    return print(
      await call(`${api}/v1/sandbox/simulate`, { method: "POST", body: { taskId, action, resource } }),
    );
  }

  const parameters: Record<string, string> = {};
  for (const pair of values.param ?? []) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new CliError(`--param expects NAME=VALUE, got "${pair}"; ${usage}`, 2);
    parameters[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const body = {
    template: values.template,
    ...(Object.keys(parameters).length ? { parameters } : {}),
    ...(values.ttl ? { ttlSeconds: Number(values.ttl) } : {}),
    ...(values.purpose ? { purpose: values.purpose } : {}),
    ...(values["subject-token"] ? { subjectToken: values["subject-token"] } : {}),
  };
  const res = await call(`${api}/v1/tasks`, {
    method: "POST",
    body,
    ...(values["idempotency-key"] ? { idempotencyKey: values["idempotency-key"] } : {}),
  });

  if (command === "credential-process") {
    const creds = (res.body as { credentials?: Record<string, string> }).credentials;
    if (!res.ok || !creds) throw new CliError(describeError(res.status, res.body), 1);
    // The format AWS SDKs and the CLI expect from credential_process.
    process.stdout.write(
      `${JSON.stringify({
        Version: 1,
        AccessKeyId: creds.AccessKeyId,
        SecretAccessKey: creds.SecretAccessKey,
        SessionToken: creds.SessionToken,
        Expiration: creds.Expiration,
      })}\n`,
    );
    return 0;
  }
  return print(res);
}

/** Prints the answer; a refusal also gets one line on stderr with its HTTP status (exit 1). */
function print(res: { ok: boolean; status: number; body: unknown }): number {
  process.stdout.write(`${JSON.stringify(res.body, null, 2)}\n`);
  if (res.ok) return 0;
  process.stderr.write(`jitv: ${describeError(res.status, res.body)}\n`);
  return 1;
}

async function resolveToken(values: { token?: string; "token-file"?: string; "token-command"?: string }) {
  if (values.token) return values.token;
  if (values["token-file"]) return readFileSync(values["token-file"], "utf8").trim();
  if (values["token-command"]) {
    const { stdout } = await promisify(execFile)("/bin/sh", ["-c", values["token-command"]], {
      timeout: 30_000,
    });
    return stdout.trim();
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

/**
 * One API call. An unreachable API is a {@link CliError} (exit 3) naming the URL and what to try.
 */
async function request(
  api: string,
  url: string,
  options: { token: string; method?: string; body?: unknown; idempotencyKey?: string },
): Promise<{ ok: boolean; status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: options.method ?? "GET",
      headers: {
        authorization: `Bearer ${options.token}`,
        ...(options.body === undefined ? {} : { "content-type": "application/json" }),
        ...(options.idempotencyKey ? { "idempotency-key": options.idempotencyKey } : {}),
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; errors?: { code?: string }[]; message?: string } })
      .cause;
    const reason = cause?.code ?? cause?.errors?.[0]?.code ?? cause?.message ?? (error as Error).message;
    throw new CliError(
      `cannot reach the jitv API at ${api} (${reason}): start the sandbox with npm start, or point --api / JITV_API at your deployment`,
      3,
    );
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { ok: res.ok, status: res.status, body };
}

function describeError(status: number, body: unknown): string {
  const error = (body as { error?: { code?: string; message?: string } })?.error;
  return `HTTP ${status} ${error ? `${error.code}: ${error.message}` : "unexpected response"}`;
}
