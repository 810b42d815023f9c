import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, describe, expect, it } from "vitest";
import type { Task } from "../../../lib/domain/task.js";
import { SANDBOX_TABLE } from "../../../lib/sandbox/sandbox.js";
import { taskKey } from "../../../lib/store/table.js";
import { exampleTemplates, freePort, sandboxToken } from "../../support/sandbox.js";
import { killSandboxGroup, startSandboxProcess } from "../../support/sandbox-process.js";

// Secrets never in logs (issue 14, STYLE.md): the sandbox runs as `jitv dev` with every line it
// writes captured (Powertools at DEBUG; and its audit file on --data), through vend, refresh, delegation, approval, completion
// with secret rotation, revocation and refused calls; then every captured line is searched for
// every bearer and subject token (whole, payload and signature), secret access key, session
// token, lifecycle task token and client secret used. A hit names only the kind that leaked.
// Sandbox secrets have versions but no values, so the secret values in play are the demo
// clients' secrets, sent to the local issuer on every token request.

type Json = Record<string, unknown>;

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) killSandboxGroup(child);
});

/** The kinds of secret found in `text`, never the secrets themselves. */
function leakedKinds(text: string, secrets: ReadonlyMap<string, string>): string[] {
  const kinds = new Set<string>();
  for (const [value, kind] of secrets) if (text.includes(value)) kinds.add(kind);
  return [...kinds].sort();
}

describe("sandbox logs", () => {
  it("never contain a token, credential, task token or secret value, whatever the flow", {
    timeout: 180_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "jitv-logscan-"));
    const [apiPort, issuerPort, dynamodbPort] = [await freePort(), await freePort(), await freePort()];
    const templates = exampleTemplates(dir, issuerPort, [
      "db-maintenance.json",
      "prod-db-admin.json",
      "tenant-reports-read.json",
    ]).dir;
    const running = await startSandboxProcess(
      [
        "--port",
        String(apiPort),
        "--issuer-port",
        String(issuerPort),
        "--dynamodb-port",
        String(dynamodbPort),
        "--templates",
        templates,
        "--data",
        join(dir, "data"),
      ],
      { stateFile: join(dir, "state.json"), env: { POWERTOOLS_LOG_LEVEL: "DEBUG" } },
    );
    children.push(running.child);
    const { sandbox } = running;
    const doc = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: `http://127.0.0.1:${dynamodbPort}`,
        region: "us-east-1",
        credentials: { accessKeyId: "local", secretAccessKey: "local" },
      }),
    );
    // value → kind, for everything that must never be logged.
    const secrets = new Map<string, string>();
    const remember = (kind: string, value: unknown) => {
      if (typeof value === "string" && value.length >= 16) secrets.set(value, kind);
    };
    const rememberToken = (kind: string, token: string) => {
      remember(kind, token);
      const [, payload, signature] = token.split(".");
      remember(`${kind} (payload)`, payload);
      remember(`${kind} (signature)`, signature);
      return token;
    };
    for (const client of Object.values(sandbox.state.clients)) remember("client secret", client.secret);
    const token = async (name: string, forAgent?: string) =>
      rememberToken(forAgent ? "subject token" : "bearer token", await sandboxToken(sandbox, name, forAgent));
    const call = async (method: string, path: string, bearer: string | undefined, body?: Json) => {
      const res = await fetch(`${sandbox.apiUrl}${path}`, {
        method,
        headers: {
          ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
          ...(body ? { "content-type": "application/json" } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const json = (await res.json()) as Json;
      const credentials = json.credentials as Json | undefined;
      remember("secret access key", credentials?.SecretAccessKey);
      remember("session token", credentials?.SessionToken);
      return { status: res.status, json };
    };
    const readTask = async (taskId: string) =>
      (
        await doc.send(
          new GetCommand({ TableName: SANDBOX_TABLE, Key: taskKey(taskId), ConsistentRead: true }),
        )
      ).Item as Task | undefined;

    try {
      // Vend and refresh, on a template that rotates its secret when the task ends.
      const agentToken = await token("demo-agent");
      const db = await call("POST", "/v1/tasks", agentToken, {
        template: "db-maintenance",
        purpose: "log scan",
      });
      expect(db.status).toBe(201);
      const dbId = db.json.taskId as string;
      expect((await call("POST", `/v1/tasks/${dbId}/credentials`, await token("demo-agent"))).status).toBe(
        200,
      );

      // Refused: a replayed token, a bad signature, no token, a delegation token as bearer.
      expect((await call("POST", "/v1/tasks", agentToken, { template: "db-maintenance" })).status).toBe(401);
      const fresh = await token("demo-agent");
      const forged = rememberToken(
        "bearer token",
        `${fresh.slice(0, -6)}${fresh.endsWith("AAAAAA") ? "BBBBBB" : "AAAAAA"}`,
      );
      expect((await call("POST", "/v1/tasks", forged, { template: "db-maintenance" })).status).toBe(401);
      expect((await call("POST", "/v1/tasks", undefined, { template: "db-maintenance" })).status).toBe(401);
      const subject = await token("alice", "support-agent");
      expect((await call("POST", "/v1/tasks", subject, { template: "db-maintenance" })).status).toBe(401);

      // Delegation: a customer-facing agent acting for alice; then an admin revokes it.
      const delegated = await call("POST", "/v1/tasks", await token("support-agent"), {
        template: "tenant-reports-read",
        parameters: { prefix: "q3" },
        purpose: "log scan",
        subjectToken: subject,
      });
      expect(delegated.status).toBe(201);
      const delegatedId = delegated.json.taskId as string;
      // The subject token's jti is spent: a second use is refused.
      const replayed = await call("POST", "/v1/tasks", await token("support-agent"), {
        template: "tenant-reports-read",
        parameters: { prefix: "q3" },
        purpose: "log scan",
        subjectToken: subject,
      });
      expect(replayed.status).toBe(401);
      const admin = await token("admin");
      expect(
        (await call("POST", `/v1/tasks/${delegatedId}/revoke`, admin, { reason: "log scan" })).status,
      ).toBe(200);

      // Approval by two staff approvers, then the agent fetches its credentials; self-approval is refused.
      const gated = await call("POST", "/v1/tasks", await token("demo-agent"), {
        template: "prod-db-admin",
        purpose: "log scan",
      });
      expect(gated.status).toBe(202);
      const gatedId = gated.json.taskId as string;
      expect((await call("POST", `/v1/tasks/${gatedId}/approve`, await token("demo-agent"))).status).toBe(
        403,
      );
      expect((await call("POST", `/v1/tasks/${gatedId}/approve`, await token("pat"))).status).toBe(200);
      expect((await call("POST", `/v1/tasks/${gatedId}/approve`, await token("quinn"))).status).toBe(200);
      expect((await call("POST", `/v1/tasks/${gatedId}/credentials`, await token("demo-agent"))).status).toBe(
        200,
      );

      // Complete (revocation and rotation follow), and wait for every lifecycle to close its task.
      const versionOf = async () =>
        (await call("GET", "/v1/sandbox/secrets/jitv-demo%2Freporting-db", undefined)).json.versionId;
      const before = await versionOf();
      expect((await call("POST", `/v1/tasks/${dbId}/complete`, await token("demo-agent"))).status).toBe(200);
      expect((await call("POST", `/v1/tasks/${gatedId}/complete`, await token("demo-agent"))).status).toBe(
        200,
      );
      await expect.poll(versionOf, { timeout: 15_000 }).not.toBe(before);
      for (const taskId of [dbId, delegatedId, gatedId]) {
        await expect
          .poll(async () => Boolean((await readTask(taskId))?.closedAt), { timeout: 15_000 })
          .toBe(true);
        const task = await readTask(taskId);
        remember("lifecycle task token", task?.taskToken);
        remember("lifecycle task token", task?.approvalToken);
      }
      expect([...secrets.values()]).toEqual(
        expect.arrayContaining([
          "secret access key",
          "session token",
          "lifecycle task token",
          "subject token",
        ]),
      );

      // A clean stop, so every buffered line is written.
      running.child.kill("SIGINT");
      await running.exited;
      // The captured lines, and the audit trail the sandbox keeps beside its data (when it does).
      const trail = join(dir, "data", "audit.jsonl");
      const output = running.output() + (existsSync(trail) ? readFileSync(trail, "utf8") : "");
      // The capture really holds the sandbox's logs: the audit trail of these very tasks.
      for (const taskId of [dbId, delegatedId, gatedId]) expect(output.includes(taskId)).toBe(true);
      expect(output.includes("task.revoked")).toBe(true);
      // The scan itself finds what it looks for.
      expect(leakedKinds(`x ${agentToken} y`, secrets)).toContain("bearer token");

      expect(leakedKinds(output, secrets), "kinds of secret found in the sandbox's logs").toEqual([]);
    } finally {
      doc.destroy();
      killSandboxGroup(running.child);
    }
  });
});
