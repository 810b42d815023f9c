import type { ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, describe, expect, it } from "vitest";
import type { Task } from "../../../lib/domain/task.js";
import { SANDBOX_TABLE } from "../../../lib/sandbox/sandbox.js";
import { GSI2, statusGsi2pk, taskKey } from "../../../lib/store/table.js";
import { exampleTemplates, freePort, sandboxToken, sandboxVend } from "../../support/sandbox.js";
import { killSandboxGroup, startSandboxProcess } from "../../support/sandbox-process.js";

// Crash consistency (issue 14, CONTRACT.md sections 6 and 7): the sandbox on `--data` is SIGKILLed
// (with its DynamoDB Local: the whole process group) during a burst of vends and completes, then
// restarted on the same data with its clock moved past the short tasks' deadline. The bound this
// proves: once the restarted sandbox answers, no task is active past its deadline, and every task
// that ended (before the crash, or by its deadline while the sandbox was down) is revoked, rotated
// and closed within the polls below — not whenever DynamoDB Local's TTL sweep reaches its lease.

const TEMPLATE = "s3-reports-read";
const READ = { action: "s3:GetObject", resource: "arn:aws:s3:::jitv-demo-reports/q3.csv" };
/** Longer than the short tasks' 900 s, shorter than the long tasks' 3600 s. */
const DOWNTIME_MS = 1_000_000;

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) killSandboxGroup(child);
});

describe("sandbox crash on --data", () => {
  it("keeps every task that reached the client, resumes lifecycles and ends past-deadline tasks at restart", {
    timeout: 180_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "jitv-crash-"));
    const [apiPort, issuerPort, dynamodbPort] = [await freePort(), await freePort(), await freePort()];
    const templates = exampleTemplates(dir, issuerPort, [`${TEMPLATE}.json`]).dir;
    const args = [
      "--port",
      String(apiPort),
      "--issuer-port",
      String(issuerPort),
      "--dynamodb-port",
      String(dynamodbPort),
      "--data",
      join(dir, "data"),
      "--templates",
      templates,
    ];
    const stateFile = join(dir, "state.json");
    const doc = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: `http://127.0.0.1:${dynamodbPort}`,
        region: "us-east-1",
        credentials: { accessKeyId: "local", secretAccessKey: "local" },
      }),
    );

    try {
      // Run 1: a burst of vends (short and long tasks) and completes, killed once a dozen 201s arrived.
      const first = await startSandboxProcess(args, { stateFile });
      children.push(first.child);
      const vended = new Map<string, number>(); // taskId → ttlSeconds, for every 201 the client read
      const completed = new Set<string>(); // complete answered 200
      const completeSent = new Set<string>(); // complete sent, answer maybe lost in the crash
      let crashed = false;
      // A request the crash cut short never reached us: its outcome is unknown, like the client's.
      const cutShort = (error: unknown) => {
        if (crashed) return undefined;
        throw error;
      };
      const worker = async (w: number) => {
        for (let i = 0; !crashed; i++) {
          const ttlSeconds = (w + i) % 2 === 0 ? 900 : 3600;
          const vend = await sandboxVend(first.sandbox, "demo-agent", { template: TEMPLATE, ttlSeconds })
            .then(async (res) => ({
              status: res.status,
              body: (await res.json()) as { taskId?: string; credentials?: unknown },
            }))
            .catch(cutShort);
          if (vend?.status !== 201) continue;
          const taskId = vend.body.taskId as string;
          expect(vend.body.credentials).toBeDefined();
          vended.set(taskId, ttlSeconds);
          if (vended.size >= 12) {
            crashed = true;
            killSandboxGroup(first.child);
            return;
          }
          if (i % 3 !== 0) continue;
          completeSent.add(taskId);
          const done = await sandboxToken(first.sandbox, "demo-agent")
            .then((token) =>
              fetch(`${first.sandbox.apiUrl}/v1/tasks/${taskId}/complete`, {
                method: "POST",
                headers: { authorization: `Bearer ${token}` },
              }),
            )
            .catch(cutShort);
          if (done?.status === 200) completed.add(taskId);
        }
      };
      await Promise.all([0, 1, 2, 3].map(worker));
      await first.exited;
      expect(vended.size).toBeGreaterThanOrEqual(12);
      expect(completed.size).toBeGreaterThan(0);

      // Run 2: same data, the clock DOWNTIME_MS later (the short tasks' deadlines passed while down).
      const second = await startSandboxProcess(args, { stateFile, clockOffsetMs: DOWNTIME_MS });
      children.push(second.child);
      const now = () => Date.now() + DOWNTIME_MS;
      const read = async (taskId: string) =>
        (
          await doc.send(
            new GetCommand({ TableName: SANDBOX_TABLE, Key: taskKey(taskId), ConsistentRead: true }),
          )
        ).Item as Task | undefined;
      const admin = await sandboxToken(second.sandbox, "admin");
      const simulate = async (taskId: string) => {
        const res = await fetch(`${second.sandbox.apiUrl}/v1/sandbox/simulate`, {
          method: "POST",
          headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
          body: JSON.stringify({ taskId, ...READ }),
        });
        expect(res.status).toBe(200);
        return ((await res.json()) as { decision: string }).decision;
      };

      const live: string[] = [];
      for (const [taskId, ttlSeconds] of vended) {
        const task = await read(taskId);
        expect(task, `task ${taskId} whose 201 reached the client`).toBeDefined();
        const stillRunning = ttlSeconds === 3600 && !completed.has(taskId);
        const allowed = completed.has(taskId)
          ? ["completed"]
          : stillRunning
            ? completeSent.has(taskId)
              ? ["active", "completed"]
              : ["active"]
            : completeSent.has(taskId)
              ? ["expired", "completed"]
              : ["expired"];
        expect(allowed, `task ${taskId}`).toContain(task?.status);
        if (task?.status === "active") {
          live.push(taskId);
          expect(await simulate(taskId)).toBe("Allowed");
        } else {
          // Ended before the crash or by its deadline while down: revoked and closed after restart.
          await expect.poll(() => simulate(taskId), { timeout: 15_000 }).toBe("ExplicitlyDenied");
          await expect.poll(async () => (await read(taskId))?.closedAt, { timeout: 15_000 }).toBeDefined();
        }
      }

      // Nothing anywhere (201s lost in the crash included) is left pending or active past its deadline,
      // nor ended without its lifecycle closing it.
      const inStatus = async (status: Task["status"]) =>
        ((
          await doc.send(
            new QueryCommand({
              TableName: SANDBOX_TABLE,
              IndexName: GSI2,
              KeyConditionExpression: "gsi2pk = :pk",
              ExpressionAttributeValues: { ":pk": statusGsi2pk(status) },
            }),
          )
        ).Items ?? []) as Task[];
      for (const status of ["active", "pending_approval"] as const) {
        for (const task of await inStatus(status)) expect(Date.parse(task.expiresAt)).toBeGreaterThan(now());
      }
      await expect
        .poll(
          async () => {
            const ended = [...(await inStatus("completed")), ...(await inStatus("expired"))];
            return ended.filter((t) => !t.closedAt).map((t) => t.taskId);
          },
          { timeout: 15_000 },
        )
        .toEqual([]);

      // The resumed lifecycle of a live task still ends it: complete → revoked.
      expect(live.length).toBeGreaterThan(0);
      const taskId = live[0] as string;
      const done = await fetch(`${second.sandbox.apiUrl}/v1/tasks/${taskId}/complete`, {
        method: "POST",
        headers: { authorization: `Bearer ${await sandboxToken(second.sandbox, "demo-agent")}` },
      });
      expect(done.status).toBe(200);
      await expect.poll(() => simulate(taskId), { timeout: 15_000 }).toBe("ExplicitlyDenied");
      await expect.poll(async () => (await read(taskId))?.closedAt, { timeout: 15_000 }).toBeDefined();
    } finally {
      doc.destroy();
      for (const child of children) killSandboxGroup(child);
    }
  });
});
