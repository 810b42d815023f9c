import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseAccountList } from "../domain/accounts.js";
import { fetchClientCredentialsToken } from "./client-credentials.js";
import { parseFaultSpec } from "./faults.js";
import { DEMO, type Sandbox, type SandboxState, startSandbox } from "./sandbox.js";

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** Demo client secrets of the running sandbox, for `jitv token` (`JITV_STATE_FILE` overrides, for tests). */
export const STATE_FILE = process.env.JITV_STATE_FILE ?? join(projectRoot, ".jitv", "sandbox.json");

function port(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${flag} must be a port number`);
  return n;
}

/** `jitv dev` (= `npm start`): runs the sandbox until Ctrl-C. */
export async function devCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      "issuer-port": { type: "string" },
      "dynamodb-port": { type: "string" },
      issuers: { type: "string" },
      templates: { type: "string" },
      roles: { type: "string" },
      policies: { type: "string" },
      data: { type: "string" },
      accounts: { type: "string" },
      "dynamodb-endpoint": { type: "string" },
      faults: { type: "string" },
    },
  });
  for (const [flag, path] of [
    ["--issuers", values.issuers],
    ["--templates", values.templates],
    ["--roles", values.roles],
    ["--policies", values.policies],
  ] as const) {
    if (path !== undefined && !existsSync(path)) throw new Error(`${flag}: ${path} does not exist`);
  }
  process.stdout.write("Starting the jitv sandbox (DynamoDB Local, local OIDC issuers, API)…\n");
  const sandbox = await startSandbox({
    port: port(values.port, 8787, "--port"),
    issuerPort: port(values["issuer-port"], 8788, "--issuer-port"),
    dynamodbPort: port(values["dynamodb-port"], 0, "--dynamodb-port"),
    templatesDir: values.templates ?? join(projectRoot, "examples", "templates"),
    rolesDir: values.roles ?? join(projectRoot, "examples", "roles"),
    policiesDir: values.policies ?? join(projectRoot, "examples", "policies"),
    stateFile: STATE_FILE,
    ...(values.issuers ? { issuersFile: values.issuers } : {}),
    ...(values.data ? { dataDir: resolve(values.data) } : {}),
    ...(values.accounts ? { targetAccounts: parseAccountList(values.accounts) } : {}),
    ...(values["dynamodb-endpoint"] ? { dynamodbEndpoint: values["dynamodb-endpoint"] } : {}),
    ...(values.faults ? { faults: parseFaultSpec(values.faults) } : {}),
  });
  const storage = values["dynamodb-endpoint"]
    ? "an already running endpoint"
    : values.data
      ? `data in ${values.data}`
      : "in memory";
  process.stdout.write(banner(sandbox, storage, values.accounts ?? DEMO.accounts.join(",")));
  for (const warning of sandbox.warnings) process.stderr.write(`jitv: warning: ${warning}\n`);

  await new Promise<void>((resolveStop) => {
    const stop = () => resolveStop();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  process.stdout.write("\nStopping the sandbox…\n");
  await sandbox.close();
  // Everything is stopped; in-process lifecycle executions may still hold timers until their
  // deadlines, so leave now rather than wait for them.
  process.stdout.write("Stopped.\n", () => process.exit(0));
  return 0;
}

function banner(s: Sandbox, storage: string, accounts: string): string {
  const users = DEMO.users.map((u) => `${u.id} (tenant ${u.tenant})`).join(", ");
  const extra = s.issuers.issuers
    .filter((i) => !Object.values(s.localIssuers).includes(i.issuer))
    .map((i) => `\n                   ${i.issuer} (${i.name}: ${i.kind}, ${i.zone} zone, from --issuers)`)
    .join("");
  const api = s.apiUrl;
  return `
jitv sandbox is running — no AWS account is involved.

  API              ${api}
  DynamoDB Local   ${s.dynamodbEndpoint}  (table jitv-sandbox, TTL + stream on, ${storage})
  OIDC issuers     ${s.localIssuers.workforceAgents}  (workforce agents: ${DEMO.workforceAgents.join(", ")})
                   ${s.localIssuers.customerAgents}  (customer-facing agents: ${DEMO.customerAgents.join(", ")})
                   ${s.localIssuers.users}  (customer users: ${users})
                   ${s.localIssuers.staff}  (staff: ${DEMO.staff.map((u) => `${u.id} (${u.groups.join(", ")})`).join(", ")})${extra}
  Templates        ${s.templates.join(", ") || "(none)"}
  Cedar policies   ${s.policySets.join(", ") || "(none: each template's agents list decides)"}
  AWS accounts     ${accounts.split(",").join(", ")}  (emulated target accounts; roles elsewhere are refused)

Next, in another terminal in this folder:

  export JITV_API=${api}
  export JITV_TOKEN=$(npx jitv token --agent demo-agent)
  npx jitv vend --template s3-reports-read --purpose "try jitv"

or with curl:

  curl -s -X POST ${api}/v1/tasks -H "Authorization: Bearer $(npx jitv token --agent demo-agent)" \\
       -H 'Content-Type: application/json' -d '{"template":"logs-read","parameters":{"service":"billing"}}'

Sandbox credentials start with JITVSANDBOX and are not AWS credentials.
Ctrl-C stops everything, DynamoDB Local included.

`;
}

const TOKEN_USAGE = "usage: jitv token --agent NAME | --user NAME [--for-agent AGENT]";

/**
 * `jitv token --agent NAME | --user NAME [--for-agent AGENT]`: a fresh token from the running
 * sandbox's local issuer. With `--for-agent`, the user's delegation token for that
 * customer-facing agent (it carries `act`), to pass as `subjectToken`; it is refused as a bearer token.
 */
export async function tokenCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { agent: { type: "string" }, user: { type: "string" }, "for-agent": { type: "string" } },
  });
  const name = values.agent ?? values.user;
  const forAgent = values["for-agent"];
  if (!name || (values.agent && values.user) || (forAgent !== undefined && !values.user))
    throw new Error(TOKEN_USAGE);
  if (!existsSync(STATE_FILE)) throw new Error("no sandbox state found: start the sandbox first (npm start)");
  const state = JSON.parse(readFileSync(STATE_FILE, "utf8")) as SandboxState;
  const client = state.clients[name];
  const kind = values.agent ? "agent" : "user";
  if (!client || client.kind !== kind) {
    const known = Object.entries(state.clients)
      .filter(([, c]) => c.kind === kind)
      .map(([id]) => id);
    throw new Error(`unknown sandbox ${kind} "${name}"; known: ${known.join(", ")}`);
  }
  if (forAgent !== undefined && client.delegationEndpoint === undefined) {
    throw new Error(
      `"${name}" is not a customer user: only customer users delegate to customer-facing agents`,
    );
  }
  const token = await fetchClientCredentialsToken({
    tokenEndpoint: forAgent === undefined ? client.tokenEndpoint : (client.delegationEndpoint as string),
    clientId: name,
    clientSecret: client.secret,
    ...(forAgent === undefined ? {} : { actor: forAgent }),
  });
  process.stdout.write(`${token}\n`);
  return 0;
}
