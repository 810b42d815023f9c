import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs, promisify } from "node:util";

const DEFAULT_API = "http://127.0.0.1:8787";

/** `jitv vend`, `credential-process`, `task …` and `simulate`: the agent side of the API. */
export async function agentCommand(command: string, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
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
    },
  });
  const api = (values.api ?? process.env.JITV_API ?? DEFAULT_API).replace(/\/+$/, "");
  const token = await resolveToken(values);

  if (command === "task") {
    const [sub, taskId] = positionals;
    const path = taskId ? `${api}/v1/tasks/${encodeURIComponent(taskId)}` : "";
    const routes: Record<string, () => Promise<Awaited<ReturnType<typeof call>>>> = {
      get: () => call(path, { token }),
      refresh: () => call(`${path}/credentials`, { token, method: "POST" }),
      complete: () => call(`${path}/complete`, { token, method: "POST" }),
      revoke: () => call(`${path}/revoke`, { token, method: "POST", body: { reason: values.reason ?? "" } }),
    };
    const run = sub ? routes[sub] : undefined;
    if (!run || !taskId)
      throw new Error("usage: jitv task get|refresh|complete|revoke TASK_ID [--reason TEXT]");
    return print(await run());
  }
  if (command === "simulate") {
    const [taskId, action, resource] = positionals;
    if (!taskId || !action || !resource) throw new Error("usage: jitv simulate TASK_ID ACTION RESOURCE_ARN");
    return print(
      await call(`${api}/v1/sandbox/simulate`, { token, method: "POST", body: { taskId, action, resource } }),
    );
  }

  if (!values.template) throw new Error("--template is required");
  const parameters: Record<string, string> = {};
  for (const pair of values.param ?? []) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new Error(`--param expects NAME=VALUE, got "${pair}"`);
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
    token,
    method: "POST",
    body,
    ...(values["idempotency-key"] ? { idempotencyKey: values["idempotency-key"] } : {}),
  });

  if (command === "credential-process") {
    const creds = (res.body as { credentials?: Record<string, string> }).credentials;
    if (!res.ok || !creds) {
      process.stderr.write(`jitv: ${describeError(res.body)}\n`);
      return 1;
    }
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

function print(res: { ok: boolean; body: unknown }): number {
  process.stdout.write(`${JSON.stringify(res.body, null, 2)}\n`);
  return res.ok ? 0 : 1;
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
  throw new Error("no token: pass --token, --token-file, --token-command or set JITV_TOKEN");
}

async function call(
  url: string,
  options: { token: string; method?: string; body?: unknown; idempotencyKey?: string },
): Promise<{ ok: boolean; status: number; body: unknown }> {
  const res = await fetch(url, {
    method: options.method ?? "GET",
    headers: {
      authorization: `Bearer ${options.token}`,
      ...(options.body === undefined ? {} : { "content-type": "application/json" }),
      ...(options.idempotencyKey ? { "idempotency-key": options.idempotencyKey } : {}),
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { ok: res.ok, status: res.status, body };
}

function describeError(body: unknown): string {
  const error = (body as { error?: { code?: string; message?: string } })?.error;
  return error ? `${error.code}: ${error.message}` : "unexpected response";
}
