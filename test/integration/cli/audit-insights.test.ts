import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// `jitv audit` with log groups, as run from a shell: the AWS SDK's own CloudWatch Logs client, sent to
// a local endpoint (AWS_ENDPOINT_URL_CLOUDWATCH_LOGS) that answers like Logs Insights.

const cli = join(resolve(import.meta.dirname, "../../.."), "bin", "jitv.mjs");
const run = promisify(execFile);
const TASK = "tsk_0123456789abcdefghjkmnpqrs";
const calls: { target: string; body: Record<string, unknown> }[] = [];
let server: Server;
let endpoint: string;

/** One LoggerAuditLog line as a result row. */
const row = (audit: Record<string, unknown>) => [
  { field: "@timestamp", value: "2026-03-03 10:00:00.000" },
  { field: "@message", value: JSON.stringify({ level: "INFO", message: "audit", audit }) },
];

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = "";
    req.on("data", (chunk) => {
      text += chunk;
    });
    req.on("end", () => {
      const target = String(req.headers["x-amz-target"] ?? "");
      calls.push({ target, body: JSON.parse(text) });
      const answer = target.endsWith(".StartQuery")
        ? { queryId: "q-1" }
        : {
            status: "Complete",
            results: [
              row({
                event: "task.completed",
                taskId: TASK,
                agent: { issuer: "https://i", id: "demo-agent" },
                at: "2026-03-03T10:00:02.000Z",
              }),
              row({
                event: "vend.allowed",
                taskId: TASK,
                template: "s3-reports-read",
                agent: { issuer: "https://i", id: "demo-agent" },
                at: "2026-03-03T10:00:01.000Z",
              }),
            ],
          };
      res.writeHead(200, { "content-type": "application/x-amz-json-1.1" });
      res.end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => {
  server?.close();
});

describe("jitv audit --log-group (Logs Insights)", () => {
  it("queries the log groups from $JITV_AUDIT_LOG_GROUPS and prints the events oldest first", async () => {
    const { stdout } = await run(process.execPath, [cli, "audit", "--task", TASK], {
      env: {
        PATH: process.env.PATH ?? "",
        HOME: mkdtempSync(join(tmpdir(), "jitv-home-")),
        AWS_REGION: "us-east-1",
        AWS_ACCESS_KEY_ID: "AKIDLOCALTEST",
        AWS_SECRET_ACCESS_KEY: "local",
        AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: endpoint,
        JITV_AUDIT_LOG_GROUPS: "/aws/lambda/jitv-Api, /aws/lambda/jitv-CloseTask",
      },
      timeout: 60_000,
    });
    expect(calls.map((c) => c.target)).toEqual(["Logs_20140328.StartQuery", "Logs_20140328.GetQueryResults"]);
    expect(calls[0]?.body).toMatchObject({
      logGroupIdentifiers: ["/aws/lambda/jitv-Api", "/aws/lambda/jitv-CloseTask"],
      queryString: `fields @timestamp, @message | filter message = "audit" and audit.taskId = "${TASK}" | sort @timestamp desc | limit 100`,
      limit: 100,
    });
    expect(calls[1]?.body).toEqual({ queryId: "q-1" });
    expect(stdout).toBe(
      [
        `2026-03-03T10:00:01.000Z\tvend.allowed\tdemo-agent\t-\t-\t${TASK}\ttemplate=s3-reports-read`,
        `2026-03-03T10:00:02.000Z\ttask.completed\tdemo-agent\t-\t-\t${TASK}\t-`,
        "",
      ].join("\n"),
    );
  });
});
