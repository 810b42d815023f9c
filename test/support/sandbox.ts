import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Logger } from "@aws-lambda-powertools/logger";
import { fetchClientCredentialsToken } from "../../lib/sandbox/client-credentials.js";
import { type Sandbox, type SandboxOptions, startSandbox } from "../../lib/sandbox/sandbox.js";

const examples = resolve(import.meta.dirname, "../../examples/templates");

/** A free TCP port on 127.0.0.1 (for a sandbox's API or issuers). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/**
 * Copies example templates into `dir/templates`, pointed at a sandbox whose local issuers listen
 * on `issuerPort` (the examples name the default 8788), so tests run side by side.
 * @returns the folder, and the names of the templates copied
 */
export function exampleTemplates(
  dir: string,
  issuerPort: number,
  files: readonly string[] = readdirSync(examples).sort(),
): { dir: string; names: string[] } {
  const out = join(dir, "templates");
  mkdirSync(out, { recursive: true });
  const names: string[] = [];
  for (const file of files) {
    const text = readFileSync(join(examples, file), "utf8");
    writeFileSync(join(out, file), text.replaceAll("127.0.0.1:8788", `127.0.0.1:${issuerPort}`));
    names.push(JSON.parse(text).name);
  }
  return { dir: out, names };
}

/**
 * An in-process sandbox on free ports (API and issuers) in a fresh temporary folder, serving
 * the named example templates, its log silent (the test reads what it needs through the API);
 * `options` adds to or overrides what it starts with.
 * @returns the sandbox and its folder (state file, templates)
 */
export async function startExampleSandbox(
  templates?: readonly string[],
  options: Partial<SandboxOptions> = {},
): Promise<{ sandbox: Sandbox; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), "jitv-sandbox-"));
  const issuerPort = await freePort();
  const sandbox = await startSandbox({
    port: 0,
    issuerPort,
    templatesDir: exampleTemplates(dir, issuerPort, templates).dir,
    stateFile: join(dir, "state.json"),
    logger: new Logger({ serviceName: "jitv-test", logLevel: "SILENT" }),
    ...options,
  });
  return { sandbox, dir };
}

/**
 * A fresh token of one of the sandbox's demo identities, from its local issuer; with `forAgent`,
 * a customer user's delegation token for that agent.
 */
export function sandboxToken(
  sandbox: Pick<Sandbox, "state">,
  name: string,
  forAgent?: string,
): Promise<string> {
  const client = sandbox.state.clients[name];
  if (!client) throw new Error(`no sandbox client ${name}`);
  const endpoint = forAgent === undefined ? client.tokenEndpoint : client.delegationEndpoint;
  if (!endpoint) throw new Error(`${name} cannot delegate`);
  return fetchClientCredentialsToken({
    tokenEndpoint: endpoint,
    clientId: name,
    clientSecret: client.secret,
    ...(forAgent === undefined ? {} : { actor: forAgent }),
  });
}

/** `POST /v1/tasks` on the sandbox as `agent`, with a fresh token. */
export async function sandboxVend(
  sandbox: Pick<Sandbox, "state" | "apiUrl">,
  agent: string,
  body: unknown,
): Promise<Response> {
  return fetch(`${sandbox.apiUrl}/v1/tasks`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${await sandboxToken(sandbox, agent)}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(body),
  });
}
