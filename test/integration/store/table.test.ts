import { randomUUID } from "node:crypto";
import { DescribeTableCommand, DescribeTimeToLiveCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type _Record as StreamRecord,
} from "@aws-sdk/client-dynamodb-streams";
import { DeleteCommand, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDynamoDbLocal } from "../../../lib/sandbox/dynamodb-local.js";
import {
  ensureTable,
  idempotencyItem,
  leaseItem,
  leaseKey,
  replayItem,
  TTL_ATTRIBUTE,
  tableDefinition,
} from "../../../lib/store/table.js";
import { createTestTable, localClientConfig, type TestTable } from "../../support/dynamodb.js";
import { makeTask } from "../tasks/fixtures.js";

/** Every record of every shard of the stream, oldest first. */
async function readStream(streams: DynamoDBStreamsClient, streamArn: string): Promise<StreamRecord[]> {
  const records: StreamRecord[] = [];
  const { StreamDescription } = await streams.send(new DescribeStreamCommand({ StreamArn: streamArn }));
  for (const shard of StreamDescription?.Shards ?? []) {
    let iterator = (
      await streams.send(
        new GetShardIteratorCommand({
          StreamArn: streamArn,
          ShardId: shard.ShardId,
          ShardIteratorType: "TRIM_HORIZON",
        }),
      )
    ).ShardIterator;
    while (iterator) {
      const page = await streams.send(new GetRecordsCommand({ ShardIterator: iterator }));
      records.push(...(page.Records ?? []));
      // An open shard always returns a next iterator; an empty page means we are at its end.
      if (!page.Records?.length) break;
      iterator = page.NextShardIterator;
    }
  }
  return records;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

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

describe("TTL backstop on DynamoDB Local", () => {
  let table: TestTable;
  let stop: () => Promise<void>;

  // A DynamoDB Local of its own: its TTL job pages through 20 items and then sleeps 10 s,
  // table after table, so on the suite's shared instance the wait grows with every test.
  beforeAll(async () => {
    const ddb = await startDynamoDbLocal({ port: 0 });
    stop = ddb.stop;
    table = await createTestTable(ddb.endpoint);
  });
  afterAll(async () => {
    await stop?.();
  });

  it("deletes an expired lease and streams a REMOVE by the DynamoDB service; a user delete has no identity", async () => {
    const expired = makeTask({ expiresAt: new Date(Date.now() - 5_000).toISOString() });
    const deletedByUs = makeTask();
    await table.doc.send(
      new PutCommand({ TableName: table.tableName, Item: leaseItem(expired.taskId, expired.expiresAt) }),
    );
    await table.doc.send(
      new PutCommand({
        TableName: table.tableName,
        Item: leaseItem(deletedByUs.taskId, deletedByUs.expiresAt),
      }),
    );
    await table.doc.send(
      new DeleteCommand({ TableName: table.tableName, Key: leaseKey(deletedByUs.taskId) }),
    );

    await waitFor(
      "TTL to delete the expired lease",
      async () => {
        const out = await table.doc.send(
          new GetCommand({ TableName: table.tableName, Key: leaseKey(expired.taskId), ConsistentRead: true }),
        );
        return out.Item ? undefined : true;
      },
      60_000,
    );

    const records = await readStream(table.streams, table.streamArn);
    const removes = records.filter((r) => r.eventName === "REMOVE");
    const byTtl = removes.find((r) => r.dynamodb?.Keys?.pk?.S === leaseKey(expired.taskId).pk);
    const byUser = removes.find((r) => r.dynamodb?.Keys?.pk?.S === leaseKey(deletedByUs.taskId).pk);
    // The Streams API spells the identity `Type`/`PrincipalId`; Lambda events spell it `type`/`principalId`.
    expect(byTtl?.userIdentity).toEqual({ Type: "Service", PrincipalId: "dynamodb.amazonaws.com" });
    expect(byTtl?.dynamodb?.OldImage).toMatchObject({
      type: { S: "lease" },
      leaseKind: { S: "task" },
      taskId: { S: expired.taskId },
    });
    expect(byUser).toBeDefined();
    expect(byUser?.userIdentity).toBeUndefined();
  }, 75_000);
});
