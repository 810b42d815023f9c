import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Sandbox, startSandbox } from "../../../lib/sandbox/sandbox.js";
import { sandboxToken, startExampleSandbox } from "../../support/sandbox.js";

// The example Cedar policies, stored at sandbox start, deciding real vends.

const root = resolve(import.meta.dirname, "../../..");

describe("Cedar policies in the sandbox", () => {
  let sandbox: Sandbox;
  const token = (name: string, forAgent?: string) => sandboxToken(sandbox, name, forAgent);
  const vend = async (as: string, body: Record<string, unknown>) => {
    const res = await fetch(`${sandbox.apiUrl}/v1/tasks`, {
      method: "POST",
      headers: { authorization: `Bearer ${await token(as)}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return {
      status: res.status,
      json: (await res.json()) as { error?: { message: string }; taskId?: string },
    };
  };

  beforeAll(async () => {
    ({ sandbox } = await startExampleSandbox(["tenant-reports-read.json", "s3-reports-read.json"], {
      policiesDir: join(root, "examples", "policies"),
    }));
  });
  afterAll(async () => {
    await sandbox?.close();
  });

  it("stores every example policy set (the baseline is built in, not stored)", () => {
    expect(sandbox.policySets).toEqual(expect.arrayContaining(["customer-zone", "tenant-reports"]));
    expect(sandbox.policySets).not.toContain("baseline");
  });

  it("refuses a customer-zone vend without a purpose, naming the policy; allows it with one", async () => {
    const body = {
      template: "tenant-reports-read",
      parameters: { prefix: "q3" },
      subjectToken: await token("alice", "support-agent"),
    };
    const refused = await vend("support-agent", body);
    expect(refused.status).toBe(403);
    expect(refused.json.error?.message).toContain("customer-vend-requires-purpose");
    const allowed = await vend("support-agent", {
      ...body,
      subjectToken: await token("alice", "support-agent"),
      purpose: "answer a ticket",
    });
    expect(allowed.status).toBe(201);
  });

  it("still lets each template's agents list decide who may vend", async () => {
    expect((await vend("demo-agent", { template: "s3-reports-read" })).status).toBe(201);
    const other = await vend("ci-agent", { template: "s3-reports-read" });
    expect(other.status).toBe(403);
    expect(other.json.error?.message).toContain("no policy permits");
  });

  it("refuses to start with an invalid policy, naming the file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "jitv-bad-policy-"));
    writeFileSync(join(dir, "broken.cedar"), 'permit (principal, action == Jitv::Action::"Fly", resource);');
    await expect(
      startSandbox({ port: 0, issuerPort: 0, policiesDir: dir, stateFile: join(dir, "state.json") }),
    ).rejects.toThrow(/broken\.cedar/);
  });
});
