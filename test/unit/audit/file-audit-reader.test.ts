import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { AuditEvent } from "../../../lib/audit/audit-log.js";
import { FileAuditTrail } from "../../../lib/audit/file-audit-reader.js";
import { MemoryAuditLog } from "../../../lib/audit/logger-audit-log.js";

const TASK_A = "tsk_aaaaaaaaaaaaaaaaaaaaaaaaaa";
const TASK_B = "tsk_bbbbbbbbbbbbbbbbbbbbbbbbbb";
const agent = (id: string) => ({ issuer: "https://agents.example", id });

/** A clock that moves one minute per event from 10:00. */
function minuteClock() {
  let minute = 0;
  return () => new Date(Date.UTC(2026, 2, 3, 10, minute++));
}

const events: AuditEvent[] = [
  { event: "vend.allowed", taskId: TASK_A, agent: agent("demo-agent") },
  { event: "vend.allowed", taskId: TASK_B, agent: agent("support-agent"), user: "alice", tenant: "acme" },
  { event: "task.completed", taskId: TASK_A, agent: agent("demo-agent") },
  { event: "task.closed", taskId: TASK_B, agent: agent("support-agent"), user: "alice", tenant: "acme" },
];

describe("FileAuditTrail", () => {
  it("passes each event on, and reads back by task, agent, time, tenant and limit, oldest first", async () => {
    const next = new MemoryAuditLog();
    const trail = new FileAuditTrail({ next, now: minuteClock() });
    for (const e of events) trail.record(e);
    expect(next.events).toEqual(events);

    const byTask = await trail.read({ taskId: TASK_A, limit: 10 });
    expect(byTask.map((r) => [r.event, r.at])).toEqual([
      ["vend.allowed", "2026-03-03T10:00:00.000Z"],
      ["task.completed", "2026-03-03T10:02:00.000Z"],
    ]);
    expect((await trail.read({ agent: "support-agent", limit: 10 })).map((r) => r.event)).toEqual([
      "vend.allowed",
      "task.closed",
    ]);
    expect(
      (await trail.read({ since: new Date("2026-03-03T10:01:00.000Z"), limit: 10 })).map((r) => r.at),
    ).toEqual(["2026-03-03T10:01:00.000Z", "2026-03-03T10:02:00.000Z", "2026-03-03T10:03:00.000Z"]);
    // The newest ones when there are more than the limit.
    expect((await trail.read({ limit: 2 })).map((r) => r.event)).toEqual(["task.completed", "task.closed"]);
    expect((await trail.read({ tenant: "acme", limit: 10 })).every((r) => r.tenant === "acme")).toBe(true);
    expect((await trail.read({ tenant: null, limit: 10 })).map((r) => r.taskId)).toEqual([TASK_A, TASK_A]);
  });

  it("keeps the trail in a 0600 JSON-lines file that a new trail reads back", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "jitv-audit-")), "data", "audit.jsonl");
    const first = new FileAuditTrail({ file, now: minuteClock() });
    for (const e of events) first.record(e);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8").trim().split("\n")).toHaveLength(4);

    const restarted = new FileAuditTrail({ file, capacity: 3 });
    // Only the newest `capacity` events are kept in memory.
    expect((await restarted.read({ limit: 10 })).map((r) => r.event)).toEqual([
      "vend.allowed",
      "task.completed",
      "task.closed",
    ]);
    // A new event pushes the oldest out of memory; the file keeps every one.
    restarted.record({ event: "task.revoked", taskId: TASK_B });
    expect((await restarted.read({ taskId: TASK_B, limit: 10 })).map((r) => r.event)).toEqual([
      "task.closed",
      "task.revoked",
    ]);
    expect(readFileSync(file, "utf8").trim().split("\n")).toHaveLength(5);
  });
});
