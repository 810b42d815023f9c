import { join, resolve } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, it } from "vitest";
import { parseFaultSpec } from "../../../lib/sandbox/faults.js";
import { SANDBOX_TABLE } from "../../../lib/sandbox/sandbox.js";
import { leaseKey, taskKey } from "../../../lib/store/table.js";
import { seeded } from "../../support/random.js";
import { sandboxVend, startExampleSandbox } from "../../support/sandbox.js";

// The invariant under injected faults (CONTRACT.md sections 6 and 7): every 201 carries credentials
// whose task is durable, active, with a live lease and a running lifecycle; every failure is the
// contract's 503 or 429 with nothing issued; never a 500.

const root = resolve(import.meta.dirname, "../../..");

describe("--faults", () => {
  it("parses the contract's spec and refuses anything else", () => {
    expect(parseFaultSpec("sts=0.2,dynamodb=0.05,sfn=0.1,iam=0.2,secrets=0.2")).toEqual({
      sts: 0.2,
      dynamodb: 0.05,
      sfn: 0.1,
      iam: 0.2,
      secrets: 0.2,
    });
    expect(() => parseFaultSpec("s3=0.1")).toThrow('unknown service "s3"');
    expect(() => parseFaultSpec("sts=2")).toThrow("sts needs a probability from 0 to 1");
  });

  it("never issues credentials without a durable active task, a lease and a lifecycle; fails only with 503/429", async () => {
    const { sandbox } = await startExampleSandbox(["s3-reports-read.json"], {
      rolesDir: join(root, "examples", "roles"),
      vendRate: { capacity: 1000, refillPerSecond: 1000 },
      faults: { sts: 0.25, dynamodb: 0.05, sfn: 0.2 },
      faultRandom: seeded(42),
    });
    const doc = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: sandbox.dynamodbEndpoint,
        region: "us-east-1",
        credentials: { accessKeyId: "local", secretAccessKey: "local" },
      }),
    );
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 40; i++) {
        const res = await sandboxVend(sandbox, "demo-agent", { template: "s3-reports-read" });
        const body = (await res.json()) as {
          taskId?: string;
          credentials?: unknown;
          error?: { code: string };
        };
        statuses.push(res.status);
        if (res.status === 201) {
          expect(body.credentials).toBeDefined();
          const taskId = body.taskId as string;
          const read = async (key: { pk: string; sk: string }) =>
            (await doc.send(new GetCommand({ TableName: SANDBOX_TABLE, Key: key, ConsistentRead: true })))
              .Item;
          expect(await read(taskKey(taskId))).toMatchObject({ status: "active", issuedCount: 1 });
          expect(await read(leaseKey(taskId))).toMatchObject({ leaseKind: "task", taskId });
          expect(sandbox.runner.execution(taskId)).toBeDefined();
        } else {
          expect(body.credentials).toBeUndefined();
          expect([503, 429], JSON.stringify(body)).toContain(res.status);
          expect(body.error?.code).toBe(res.status === 503 ? "upstream_unavailable" : "rate_limited");
        }
      }
      // The faults really happened, and some vends still went through.
      expect(statuses.filter((s) => s === 201).length).toBeGreaterThan(0);
      expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
      expect(statuses).not.toContain(500);
    } finally {
      doc.destroy();
      await sandbox.close();
    }
  }, 120_000);
});
