import {
  type CloudWatchLogsClient,
  GetQueryResultsCommand,
  type ResultField,
  StartQueryCommand,
  StopQueryCommand,
} from "@aws-sdk/client-cloudwatch-logs";
import { InvalidRequestError, UpstreamUnavailableError } from "../domain/errors.js";
import { isTaskId } from "../domain/ids.js";
import {
  AUDIT_FILTER_VALUE,
  type AuditQuery,
  type AuditReader,
  type AuditRecord,
  MAX_AUDIT_LIMIT,
} from "./audit-reader.js";

export interface InsightsAuditReaderOptions {
  readonly client: CloudWatchLogsClient;
  /** The log groups the functions write audit events to (names or ARNs, at most 50). */
  readonly logGroups: readonly string[];
  /** How far back a query without `since` looks. @default 7 days */
  readonly defaultLookbackSeconds?: number;
  /** Wait between two `GetQueryResults` calls. @default 1000 */
  readonly pollIntervalMs?: number;
  /** `GetQueryResults` calls before the query is stopped and the read fails. @default 60 */
  readonly maxPolls?: number;
  /** @default () => new Date() */
  readonly now?: () => Date;
}

/**
 * Reads the audit trail back from CloudWatch Logs with a Logs Insights query: the deployed
 * functions write each event as one JSON log line (`"message": "audit"`, the event under `audit`,
 * see `LoggerAuditLog`). Polls `GetQueryResults` a bounded number of times; a query still running
 * after that is stopped and reported, never waited on forever.
 */
export class InsightsAuditReader implements AuditReader {
  readonly #o: InsightsAuditReaderOptions;

  constructor(options: InsightsAuditReaderOptions) {
    if (options.logGroups.length === 0 || options.logGroups.length > 50)
      throw new InvalidRequestError("Logs Insights queries 1 to 50 log groups");
    this.#o = options;
  }

  async read(query: AuditQuery): Promise<AuditRecord[]> {
    const now = this.#o.now?.() ?? new Date();
    const lookback = this.#o.defaultLookbackSeconds ?? 7 * 24 * 3600;
    const start = query.since ?? new Date(now.getTime() - lookback * 1000);
    const { client } = this.#o;
    const { queryId } = await client.send(
      new StartQueryCommand({
        logGroupIdentifiers: [...this.#o.logGroups],
        startTime: Math.floor(start.getTime() / 1000),
        endTime: Math.ceil(now.getTime() / 1000),
        queryString: insightsQueryString(query),
        limit: query.limit,
      }),
    );
    if (!queryId) throw new UpstreamUnavailableError("Logs Insights started no query");
    const maxPolls = this.#o.maxPolls ?? 60;
    for (let poll = 0; poll < maxPolls; poll++) {
      const res = await client.send(new GetQueryResultsCommand({ queryId }));
      if (res.status === "Complete") {
        // Newest first from the query; oldest first for the reader.
        return (res.results ?? []).flatMap((row) => recordOf(row)).reverse();
      }
      if (res.status !== "Running" && res.status !== "Scheduled")
        throw new UpstreamUnavailableError(
          `the Logs Insights query ended ${res.status ?? "without a status"}`,
        );
      await new Promise((r) => setTimeout(r, this.#o.pollIntervalMs ?? 1000));
    }
    await client.send(new StopQueryCommand({ queryId })).catch(() => undefined);
    throw new UpstreamUnavailableError(
      `the Logs Insights query did not finish after ${maxPolls} polls; narrow it with --since or --task`,
    );
  }
}

/**
 * The Logs Insights query for `query`. Filter values are checked against a strict charset instead
 * of being escaped, so no value can end the quoted string it sits in and add query commands.
 * @throws InvalidRequestError for a value outside it
 * @example
 * insightsQueryString({ taskId: "tsk_…", limit: 100 });
 * // fields @timestamp, @message | filter message = "audit" and audit.taskId = "tsk_…" | sort @timestamp desc | limit 100
 */
export function insightsQueryString(query: AuditQuery): string {
  const filters = ['message = "audit"'];
  if (query.taskId !== undefined) {
    if (!isTaskId(query.taskId)) throw new InvalidRequestError("task: must be a task id");
    filters.push(`audit.taskId = "${query.taskId}"`);
  }
  if (query.agent !== undefined) filters.push(`audit.agent.id = "${safe("agent", query.agent)}"`);
  if (typeof query.tenant === "string") filters.push(`audit.tenant = "${safe("tenant", query.tenant)}"`);
  if (query.tenant === null) filters.push("not ispresent(audit.tenant)");
  if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_AUDIT_LIMIT)
    throw new InvalidRequestError(`limit: must be 1..${MAX_AUDIT_LIMIT}`);
  return [
    "fields @timestamp, @message",
    `filter ${filters.join(" and ")}`,
    "sort @timestamp desc",
    `limit ${query.limit}`,
  ].join(" | ");
}

function safe(name: string, value: string): string {
  if (!AUDIT_FILTER_VALUE.test(value)) throw new InvalidRequestError(`${name}: unsupported characters`);
  return value;
}

/** One result row as a record; a row whose message is not an audit line is skipped. */
function recordOf(row: readonly ResultField[]): AuditRecord[] {
  const field = (name: string) => row.find((f) => f.field === name)?.value;
  const message = field("@message") ?? "";
  try {
    // A runtime may prefix the JSON line (timestamp, request id): the object starts at the first brace.
    const line = JSON.parse(message.slice(message.indexOf("{"))) as { audit?: Partial<AuditRecord> };
    const audit = line.audit;
    if (!audit || typeof audit.event !== "string") return [];
    const at = audit.at ?? new Date(`${field("@timestamp")?.replace(" ", "T")}Z`).toISOString();
    return [{ ...(audit as AuditRecord), at }];
  } catch {
    return [];
  }
}
