import { randomUUID } from "node:crypto";
import { DescribeTableCommand, DescribeTimeToLiveCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { _Record as StreamRecord } from "@aws-sdk/client-dynamodb-streams";
import { DeleteCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { handleTtlRecords } from "../../../lib/app/ttl-backstop.js";
import { toLambdaRecord } from "../../../lib/sandbox/stream-poller.js";
import {
  ensureTable,
  idempotencyItem,
  leaseItem,
  leaseKey,
  pruneLeaseItem,
  pruneLeaseKey,
  replayItem,
  TTL_ATTRIBUTE,
  tableDefinition,
} from "../../../lib/store/table.js";
import {
  asTtlDeletion,
  createTestTable,
  localClientConfig,
  readStream,
  type TestTable,
} from "../../support/dynamodb.js";
import { recordingBackstopLifecycle } from "../../support/fakes.js";
import { makeTask } from "../tasks/fixtures.js";

describe("ensureTable", () => {
  it("creates the single-table design once, with TTL on ttlEpoch, whoever calls it", async () => {
    const client = new DynamoDBClient(localClientConfig());
    const tableName = `jitv-test-${randomUUID()}`;

    const results = await Promise.all([ensureTable(client, tableName), ensureTable(client, tableName)]);
    const again = await ensureTable(client, tableName);

    expect(new Set([...results, again].map((r) => r.streamArn)).size).toBe(1);
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    expect(Table).toMatchObject({
      TableStatus: "ACTIVE",
      KeySchema: tableDefinition(tableName).KeySchema,
      BillingModeSummary: { BillingMode: "PAY_PER_REQUEST" },
      StreamSpecification: { StreamEnabled: true, StreamViewType: "NEW_AND_OLD_IMAGES" },
      GlobalSecondaryIndexes: expect.arrayContaining([
        expect.objectContaining({
          IndexName: "gsi1",
          KeySchema: [
            { AttributeName: "gsi1pk", KeyType: "HASH" },
            { AttributeName: "gsi1sk", KeyType: "RANGE" },
          ],
          Projection: { ProjectionType: "ALL" },
        }),
        expect.objectContaining({
          IndexName: "gsi2",
          KeySchema: [
            { AttributeName: "gsi2pk", KeyType: "HASH" },
            { AttributeName: "gsi2sk", KeyType: "RANGE" },
          ],
          Projection: { ProjectionType: "ALL" },
        }),
      ]),
    });
    const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
    expect(ttl.TimeToLiveDescription).toEqual({ TimeToLiveStatus: "ENABLED", AttributeName: TTL_ATTRIBUTE });
  });

  it("gives every item that expires the gsi1 and gsi2 key attributes DynamoDB Local's TTL job needs", () => {
    const task = makeTask({ idempotencyKey: "k" });
    const expiring = [
      leaseItem(task.taskId, task.expiresAt),
      idempotencyItem({ ...task, idempotencyKey: "k" }),
      replayItem("https://issuer.example", "jti", 1, 2),
    ];

    for (const item of expiring) {
      expect(item).toHaveProperty(TTL_ATTRIBUTE);
      expect(item).toMatchObject({ gsi1pk: item.pk, gsi1sk: item.sk, gsi2pk: item.pk, gsi2sk: item.sk });
    }
  });
});

describe("lease REMOVE records on DynamoDB Local's stream, handed to the TTL backstop", () => {
  let table: TestTable;

  beforeAll(async () => {
    table = await createTestTable();
  });

  // DynamoDB Local's TTL sweep is real time (one end-to-end test waits for it, in
  // test/integration/lifecycle/sandbox-lifecycle.test.ts). Here the lease is deleted by hand and
  // its real REMOVE record read back; the sweep's record differs only by the identity DynamoDB
  // stamps on it, which the test adds.
  it("streams a REMOVE with the lease's whole image and no identity for a user delete; the backstop acts only on the TTL service's", async () => {
    const task = makeTask();
    const lease = leaseItem(task.taskId, task.expiresAt);
    await table.doc.send(new PutCommand({ TableName: table.tableName, Item: lease }));
    await table.doc.send(new DeleteCommand({ TableName: table.tableName, Key: leaseKey(task.taskId) }));

    const removes = (await readStream(table.streams, table.streamArn)).filter(
      (r) => r.eventName === "REMOVE" && r.dynamodb?.Keys?.pk?.S === leaseKey(task.taskId).pk,
    );
    expect(removes).toHaveLength(1);
    const [byUser] = removes as [StreamRecord];
    expect(byUser.userIdentity).toBeUndefined();
    expect(byUser.dynamodb).toMatchObject({
      Keys: marshall(leaseKey(task.taskId)),
      OldImage: marshall(lease),
      SequenceNumber: expect.stringMatching(/^\d+$/),
    });

    // A delete by a user is no expiry: nothing runs.
    const ignored = recordingBackstopLifecycle();
    await expect(handleTtlRecords([toLambdaRecord(byUser)], ignored.lifecycle)).resolves.toEqual({
      batchItemFailures: [],
    });
    expect(ignored.calls).toEqual([]);

    // The same record as the TTL sweep writes it: the backstop runs for exactly this task.
    const byTtl = asTtlDeletion(byUser);
    const handled = recordingBackstopLifecycle();
    await expect(handleTtlRecords([toLambdaRecord(byTtl)], handled.lifecycle)).resolves.toEqual({
      batchItemFailures: [],
    });
    expect(handled.calls).toEqual([`backstop ${task.taskId}`]);

    // A failing backstop hands the record's own sequence number back for Lambda to retry.
    const failing = recordingBackstopLifecycle(task.taskId);
    await expect(handleTtlRecords([toLambdaRecord(byTtl)], failing.lifecycle)).resolves.toEqual({
      batchItemFailures: [{ itemIdentifier: byUser.dynamodb?.SequenceNumber }],
    });
  });

  it("hands a prune lease's REMOVE to pruning with its role and task", async () => {
    const task = makeTask();
    const lease = pruneLeaseItem(task.roleArn, task.taskId, task.expiresAt);
    await table.doc.send(new PutCommand({ TableName: table.tableName, Item: lease }));
    const key = pruneLeaseKey(task.roleArn, task.taskId);
    await table.doc.send(new DeleteCommand({ TableName: table.tableName, Key: key }));

    const record = (await readStream(table.streams, table.streamArn)).find(
      (r) =>
        r.eventName === "REMOVE" && r.dynamodb?.Keys?.sk?.S === key.sk && r.dynamodb?.Keys?.pk?.S === key.pk,
    );
    expect(record?.dynamodb?.OldImage).toEqual(marshall(lease));
    const { lifecycle, calls } = recordingBackstopLifecycle();
    await expect(
      handleTtlRecords([toLambdaRecord(asTtlDeletion(record as StreamRecord))], lifecycle),
    ).resolves.toEqual({ batchItemFailures: [] });
    expect(calls).toEqual([`prune ${task.roleArn} ${task.taskId}`]);
  });
});
