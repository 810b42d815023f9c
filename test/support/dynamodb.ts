import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams";
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
