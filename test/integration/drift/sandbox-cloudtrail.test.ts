import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sandbox } from "../../../lib/sandbox/sandbox.js";
import { cloudTrailRecord, type FixtureName } from "../../fixtures/cloudtrail/records.js";
import { sandboxToken, sandboxVend, startExampleSandbox } from "../../support/sandbox.js";

// CONTRACT.md sections 7 and 9 through the sandbox's HTTP API: a CloudTrail record posted to
// /v1/sandbox/cloudtrail revokes an off-purpose task, which `simulate` then denies.

let sandbox: Sandbox;

beforeAll(async () => {
  ({ sandbox } = await startExampleSandbox(["s3-reports-read.json"]));
});

afterAll(async () => {
  await sandbox?.close();
});

async function call(path: string, as: string, body: unknown): Promise<Response> {
  return fetch(`${sandbox.apiUrl}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${await sandboxToken(sandbox, as)}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(body),
  });
}

async function vend(): Promise<string> {
  const res = await sandboxVend(sandbox, "demo-agent", {
    template: "s3-reports-read",
    purpose: "summarise Q3",
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { taskId: string }).taskId;
}

/** A fixture record made by `taskId` just now. */
const record = (name: FixtureName, taskId: string) =>
  cloudTrailRecord(name, { taskId, eventID: randomUUID(), eventTime: new Date().toISOString() });

async function simulate(taskId: string, resource = "arn:aws:s3:::jitv-demo-reports/q3/summary.csv") {
  const res = await call("/v1/sandbox/simulate", "admin", { taskId, action: "s3:GetObject", resource });
  expect(res.status).toBe(200);
  return ((await res.json()) as { decision: string }).decision;
}

async function task(taskId: string) {
  const res = await fetch(`${sandbox.apiUrl}/v1/tasks/${taskId}`, {
    headers: { authorization: `Bearer ${await sandboxToken(sandbox, "admin")}` },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { status: string; reason?: string };
}

describe("POST /v1/sandbox/cloudtrail", () => {
  it("revokes a task that reads outside its policy; simulate then denies its sessions", async () => {
    const taskId = await vend();
    expect(await simulate(taskId)).toBe("Allowed");

    const res = await call("/v1/sandbox/cloudtrail", "admin", {
      Records: [record("s3-get-object", taskId), record("s3-get-object-other-bucket", taskId)],
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({
      delivered: 2,
      handled: 2,
      findings: [{ taskId, rule: "off-policy-action", outcome: "revoked" }],
    });
    expect(await task(taskId)).toMatchObject({
      status: "revoked",
      reason: expect.stringMatching(
        /^drift: off-policy-action: s3:GetObject on arn:aws:s3:::payroll-exports\//,
      ),
    });
    // The lifecycle puts the task on its role's deny list, as after an admin revoke.
    await expect.poll(() => simulate(taskId), { timeout: 15_000 }).toBe("ExplicitlyDenied");
  });

  it("leaves a task that stays within its policy active", async () => {
    const taskId = await vend();
    const res = await call("/v1/sandbox/cloudtrail", "admin", {
      Records: [record("s3-get-object", taskId), record("sts-get-caller-identity", taskId)],
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ delivered: 2, handled: 2, duplicates: 0, ignored: 0, findings: [] });
    expect((await task(taskId)).status).toBe("active");
  });

  it("delivers only what the deployed rule would: not a role outside the target accounts", async () => {
    const taskId = await vend();
    const elsewhere = cloudTrailRecord("s3-get-object-other-bucket", {
      taskId,
      eventID: randomUUID(),
      roleArn: "arn:aws:iam::999999999999:role/jitv/reports-reader",
    });
    const res = await call("/v1/sandbox/cloudtrail", "admin", { Records: [elsewhere] });
    expect(await res.json()).toMatchObject({ delivered: 0, ignored: 1, findings: [] });
    expect((await task(taskId)).status).toBe("active");
  });

  it("answers only workforce admins, and refuses bodies that are not CloudTrail batches", async () => {
    const taskId = await vend();
    const body = { Records: [record("s3-get-object-other-bucket", taskId)] };
    expect((await call("/v1/sandbox/cloudtrail", "demo-agent", body)).status).toBe(403);
    expect((await call("/v1/sandbox/cloudtrail", "acme-admin", body)).status).toBe(403);
    expect((await call("/v1/sandbox/cloudtrail", "admin", { records: body.Records })).status).toBe(400);
    expect((await call("/v1/sandbox/cloudtrail", "admin", { Records: [] })).status).toBe(400);
    expect((await task(taskId)).status).toBe("active");
  });
});
