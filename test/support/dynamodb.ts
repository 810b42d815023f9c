import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type _Record as StreamRecord,
} from "@aws-sdk/client-dynamodb-streams";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { inject } from "vitest";
import { ensureTable } from "../../lib/store/table.js";

/** A fresh table on the run's DynamoDB Local, with clients pointed at it. */
export interface TestTable {
  readonly tableName: string;
  /** ARN of the table's stream. */
  readonly streamArn: string;
  readonly client: DynamoDBClient;
  readonly doc: DynamoDBDocumentClient;
  readonly streams: DynamoDBStreamsClient;
}

/** Client settings for DynamoDB Local: any region and credentials work with `-sharedDb`. */
export function localClientConfig(endpoint: string = inject("dynamodbEndpoint")) {
  return {
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  };
}

/**
 * Creates a uniquely named table (the single-table design, TTL enabled, stream on) on the
 * DynamoDB Local started by the global setup (or at `endpoint`), so tests never see each
 * other's items.
 */
export async function createTestTable(endpoint?: string): Promise<TestTable> {
  const config = localClientConfig(endpoint);
  const client = new DynamoDBClient(config);
  const doc = DynamoDBDocumentClient.from(client);
  const streams = new DynamoDBStreamsClient(config);
  const tableName = `jitv-test-${randomUUID()}`;
  const { streamArn } = await ensureTable(client, tableName);
  return { tableName, streamArn, client, doc, streams };
}

/** Every record of every shard of a table's stream, oldest first, as the Streams API returns them. */
export async function readStream(streams: DynamoDBStreamsClient, streamArn: string): Promise<StreamRecord[]> {
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

/**
 * A stream record as DynamoDB's TTL sweep writes it: the `REMOVE` record of a delete, stamped
 * with the identity of the TTL service (Streams API spelling). DynamoDB Local's sweep is real
 * time, so tests delete the item themselves, read the real record and stamp it; one slow test
 * (`sandbox-lifecycle.test.ts`) waits for the real sweep.
 */
export function asTtlDeletion(record: StreamRecord): StreamRecord {
  if (record.eventName !== "REMOVE") throw new Error(`a ${record.eventName} record is no deletion`);
  return { ...record, userIdentity: { Type: "Service", PrincipalId: "dynamodb.amazonaws.com" } };
}
