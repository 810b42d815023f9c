import { randomUUID } from "node:crypto";
import type { Task } from "../../../lib/domain/task.js";

/** An active workforce task expiring in 15 minutes; override what the test is about. */
export function makeTask(overrides: Partial<Task> = {}): Task {
  const now = Date.now();
  return {
    taskId: `tsk_${randomUUID()}`,
    status: "active",
    template: "reports-read",
    zone: "workforce",
    roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
    agent: { issuer: "https://issuer.example", id: "agent-a" },
    parameters: { prefix: "q3" },
    sessionPolicy:
      '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::reports/q3/*"]}]}',
    createdAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 15 * 60_000).toISOString(),
    issuedCount: 0,
    ...overrides,
  };
}
