import {
  CloudWatchLogsClient,
  GetQueryResultsCommand,
  StartQueryCommand,
  StopQueryCommand,
} from "@aws-sdk/client-cloudwatch-logs";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { InsightsAuditReader, insightsQueryString } from "../../../lib/audit/insights-audit-reader.js";
import { InvalidRequestError, UpstreamUnavailableError } from "../../../lib/domain/errors.js";

const logs = mockClient(CloudWatchLogsClient);
const NOW = new Date("2026-03-03T10:00:00.000Z");
const TASK = "tsk_0123456789abcdefghjkmnpqrs";
const GROUPS = ["/aws/lambda/jitv-Api", "/aws/lambda/jitv-CloseTask"];

const reader = (options: { maxPolls?: number } = {}) =>
  new InsightsAuditReader({
    client: new CloudWatchLogsClient({ region: "us-east-1" }),
    logGroups: GROUPS,
    pollIntervalMs: 0,
    now: () => NOW,
    ...options,
  });

/** A result row as Logs Insights returns it for one `LoggerAuditLog` line. */
const row = (audit: Record<string, unknown>, prefix = "") => [
  { field: "@timestamp", value: "2026-03-03 09:59:00.000" },
  {
    field: "@message",
    value: `${prefix}${JSON.stringify({ level: "INFO", message: "audit", service: "jitv", audit })}`,
  },
];

beforeEach(() => {
  logs.reset();
});

describe("InsightsAuditReader", () => {
  it("sends the exact query, the log groups and the time range, then polls until Complete", async () => {
    logs.on(StartQueryCommand).resolves({ queryId: "q-1" });
    logs
      .on(GetQueryResultsCommand)
      .resolvesOnce({ status: "Scheduled" })
      .resolvesOnce({ status: "Running" })
      .resolves({
        status: "Complete",
        results: [
          // Newest first, as the query sorts them.
          row({ event: "task.completed", taskId: TASK, at: "2026-03-03T09:59:00.000Z" }),
          row(
            { event: "vend.allowed", taskId: TASK, agent: { issuer: "https://i", id: "demo-agent" } },
            "2026-03-03T09:58:00.000Z\tabc-123\tINFO\t",
          ),
          [{ field: "@message", value: "not json" }],
        ],
      });
    const events = await reader().read({ taskId: TASK, agent: "demo-agent", limit: 50 });

    expect(logs).toReceiveCommandWith(StartQueryCommand, {
      logGroupIdentifiers: GROUPS,
      startTime: NOW.getTime() / 1000 - 7 * 24 * 3600,
      endTime: NOW.getTime() / 1000,
      queryString: `fields @timestamp, @message | filter message = "audit" and audit.taskId = "${TASK}" and audit.agent.id = "demo-agent" | sort @timestamp desc | limit 50`,
      limit: 50,
    });
    expect(logs).toReceiveCommandTimes(GetQueryResultsCommand, 3);
    // Oldest first; a prefixed line is read from its JSON; a line that is not an audit event is skipped.
    expect(events).toEqual([
      {
        event: "vend.allowed",
        taskId: TASK,
        agent: { issuer: "https://i", id: "demo-agent" },
        at: "2026-03-03T09:59:00.000Z",
      },
      { event: "task.completed", taskId: TASK, at: "2026-03-03T09:59:00.000Z" },
    ]);
  });

  it("starts at --since", async () => {
    logs.on(StartQueryCommand).resolves({ queryId: "q-2" });
    logs.on(GetQueryResultsCommand).resolves({ status: "Complete", results: [] });
    await reader().read({ since: new Date("2026-03-03T08:00:00.000Z"), limit: 10 });
    expect(logs).toReceiveCommandWith(StartQueryCommand, {
      startTime: Date.parse("2026-03-03T08:00:00.000Z") / 1000,
      queryString: 'fields @timestamp, @message | filter message = "audit" | sort @timestamp desc | limit 10',
    });
  });

  it("stops a query that does not finish within its polls, and reports a failed one", async () => {
    logs.on(StartQueryCommand).resolves({ queryId: "q-3" });
    logs.on(GetQueryResultsCommand).resolves({ status: "Running" });
    logs.on(StopQueryCommand).resolves({ success: true });
    await expect(reader({ maxPolls: 3 }).read({ taskId: TASK, limit: 10 })).rejects.toThrow(
      UpstreamUnavailableError,
    );
    expect(logs).toReceiveCommandTimes(GetQueryResultsCommand, 3);
    expect(logs).toReceiveCommandWith(StopQueryCommand, { queryId: "q-3" });

    logs.on(GetQueryResultsCommand).resolves({ status: "Failed" });
    await expect(reader().read({ taskId: TASK, limit: 10 })).rejects.toThrow(
      "the Logs Insights query ended Failed",
    );
  });
});

describe("insightsQueryString", () => {
  it("filters by tenant, or by the absence of one", () => {
    expect(insightsQueryString({ tenant: "acme", limit: 5 })).toBe(
      'fields @timestamp, @message | filter message = "audit" and audit.tenant = "acme" | sort @timestamp desc | limit 5',
    );
    expect(insightsQueryString({ tenant: null, limit: 5 })).toContain("and not ispresent(audit.tenant) |");
  });

  it.each([
    ["a task id that is not one", { taskId: 'tsk_x" or 1=1', limit: 5 }],
    ["a quote ending the string", { agent: 'a" | display @message', limit: 5 }],
    ["a pipe", { agent: "a|fields", limit: 5 }],
    ["a backslash", { agent: "a\\", limit: 5 }],
    ["whitespace", { agent: "a b", limit: 5 }],
    ["a tenant with a quote", { tenant: 'acme"', limit: 5 }],
    ["a limit that is not a whole number in range", { limit: 5.5 }],
    ["a limit above the maximum", { limit: 100_000 }],
  ])("refuses %s instead of building a query", (_what, query) => {
    expect(() => insightsQueryString(query)).toThrow(InvalidRequestError);
  });

  it("never reaches CloudWatch with an unsafe value", async () => {
    await expect(reader().read({ agent: 'x"', limit: 5 })).rejects.toThrow(InvalidRequestError);
    expect(logs).toReceiveCommandTimes(StartQueryCommand, 0);
  });
});
