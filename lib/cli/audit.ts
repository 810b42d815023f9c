import { parseArgs } from "node:util";
import { ApiError, ApiUnreachableError, apiRequest } from "../agent/api.js";
import {
  type AuditQuery,
  type AuditRecord,
  auditQueryOf,
  auditQueryParamsSchema,
} from "../audit/audit-reader.js";
import { formatIssues } from "../domain/template.js";
import { CliError } from "./agent.js";

const DEFAULT_API = "http://127.0.0.1:8787";
const USAGE =
  "usage: jitv audit --task ID | --agent ID | --since TIME [--limit N] [--json] [--log-group NAME]... [--region R] [--token T] [--api URL]";
/** `--since 90m`, `2h`, `7d`: that long before now. */
const RELATIVE_TIME = /^(\d+)([smhd])$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/**
 * `jitv audit`: reads the audit trail back. With log groups (`--log-group`, repeatable, or
 * `$JITV_AUDIT_LOG_GROUPS`, comma-separated: the stack's `AuditLogGroups` output) it queries
 * CloudWatch Logs Insights with the usual AWS credentials; otherwise it asks the sandbox's
 * `GET /v1/sandbox/audit` with an admin token. One line per event, oldest first, or `--json`.
 */
export async function auditCommand(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new CliError(`${(error as Error).message.split(/\.\s/)[0]}; ${USAGE}`, 2);
  }
  const { values } = parsed;
  if (!values.task && !values.agent && !values.since)
    throw new CliError(`one of --task, --agent or --since is required; ${USAGE}`, 2);
  const params = auditQueryParamsSchema.safeParse({
    ...(values.task === undefined ? {} : { task: values.task }),
    ...(values.agent === undefined ? {} : { agent: values.agent }),
    ...(values.since === undefined ? {} : { since: sinceTime(values.since) }),
    ...(values.limit === undefined ? {} : { limit: values.limit }),
  });
  if (!params.success) throw new CliError(`${formatIssues(params.error)}; ${USAGE}`, 2);
  const query = auditQueryOf(params.data);

  const logGroups = values["log-group"] ?? splitList(process.env.JITV_AUDIT_LOG_GROUPS);
  const records =
    logGroups.length > 0
      ? await fromInsights(query, logGroups, values.region)
      : await fromSandbox(params.data, values.api, values.token);

  if (values.json) {
    process.stdout.write(`${JSON.stringify({ events: records }, null, 2)}\n`);
  } else {
    for (const record of records) process.stdout.write(`${formatRecord(record)}\n`);
    if (records.length === 0) process.stderr.write("jitv: no audit events match\n");
  }
  return 0;
}

/**
 * One event as a tab-separated line: time, event, agent, user, tenant, task, then every other
 * field as `key=value` (`-` for an absent column).
 */
export function formatRecord(record: AuditRecord): string {
  const { at, event, agent, user, tenant, taskId, ...rest } = record;
  const details = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return [at, event, agent?.id, user, tenant, taskId, details].map((v) => v || "-").join("\t");
}

async function fromInsights(query: AuditQuery, logGroups: string[], region: string | undefined) {
  // Loaded only here: reading the sandbox's trail needs no AWS SDK, and starts faster without it.
  const { CloudWatchLogsClient } = await import("@aws-sdk/client-cloudwatch-logs");
  const { InsightsAuditReader } = await import("../audit/insights-audit-reader.js");
  const client = new CloudWatchLogsClient(region ? { region } : {});
  try {
    return await new InsightsAuditReader({ client, logGroups }).read(query);
  } finally {
    client.destroy();
  }
}

async function fromSandbox(
  params: Record<string, string | number | undefined>,
  apiOption: string | undefined,
  tokenOption: string | undefined,
): Promise<AuditRecord[]> {
  const api = (apiOption ?? process.env.JITV_API ?? DEFAULT_API).replace(/\/+$/, "");
  const token = tokenOption ?? process.env.JITV_TOKEN?.trim();
  if (!token)
    throw new CliError(
      "no token: pass --token or set JITV_TOKEN (an admin's), or --log-group / JITV_AUDIT_LOG_GROUPS for a deployment",
      2,
    );
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined) search.set(key, String(value));
  try {
    const res = await apiRequest(api, `/v1/sandbox/audit?${search}`, { token });
    if (!res.ok) throw ApiError.from(res);
    return (res.body as { events: AuditRecord[] }).events;
  } catch (error) {
    if (error instanceof ApiUnreachableError)
      throw new CliError(
        `${error.message}: start the sandbox with npm start, or pass --log-group for a deployment`,
        3,
      );
    if (error instanceof ApiError) throw new CliError(error.message, 1);
    throw error;
  }
}

/** `--since`: an RFC 3339 time, or a duration before now (`30m`, `2h`, `7d`). */
function sinceTime(value: string): string {
  const relative = RELATIVE_TIME.exec(value);
  if (!relative) return value;
  const seconds = Number(relative[1]) * UNIT_SECONDS[relative[2] as keyof typeof UNIT_SECONDS];
  return new Date(Date.now() - seconds * 1000).toISOString();
}

function splitList(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      task: { type: "string" },
      agent: { type: "string" },
      since: { type: "string" },
      limit: { type: "string" },
      json: { type: "boolean" },
      "log-group": { type: "string", multiple: true },
      region: { type: "string" },
      token: { type: "string" },
      api: { type: "string" },
    },
  });
}
