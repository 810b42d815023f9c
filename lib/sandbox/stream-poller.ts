import {
  type _Record,
  DescribeStreamCommand,
  type DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
} from "@aws-sdk/client-dynamodb-streams";
import { isTtlLeaseExpiry, type TtlStreamRecord } from "../app/ttl-backstop.js";

/**
 * Consumes the table's real stream on DynamoDB Local the way the deployed event source
 * mapping does: every shard, in order, records filtered by the same TTL filter, handed to
 * the same handler in batches; `batchItemFailures` are retried (up to `maxRetries`).
 * The Streams API spells `userIdentity` as `Type`/`PrincipalId`; records are converted to
 * the Lambda event's `type`/`principalId` first.
 */
export class StreamPoller {
  readonly #client: DynamoDBStreamsClient;
  readonly #streamArn: string;
  readonly #handle: (
    records: TtlStreamRecord[],
  ) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;
  readonly #intervalMs: number;
  readonly #maxRetries: number;
  readonly #onError: (error: unknown) => void;
  readonly #iterators = new Map<string, string | undefined>();
  #timer?: NodeJS.Timeout;
  #stopped = false;
  #polling?: Promise<void>;

  constructor(props: {
    client: DynamoDBStreamsClient;
    streamArn: string;
    handle: (records: TtlStreamRecord[]) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;
    intervalMs?: number;
    maxRetries?: number;
    onError?: (error: unknown) => void;
  }) {
    this.#client = props.client;
    this.#streamArn = props.streamArn;
    this.#handle = props.handle;
    this.#intervalMs = props.intervalMs ?? 250;
    this.#maxRetries = props.maxRetries ?? 5;
    this.#onError = props.onError ?? (() => undefined);
  }

  /** Starts from the latest position of every shard open now (older records are not replayed). */
  async start(): Promise<void> {
    await this.#discoverShards("LATEST");
    const tick = () => {
      if (this.#stopped) return;
      this.#polling = this.#pollOnce()
        .catch(this.#onError)
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(tick, this.#intervalMs);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#polling?.catch(() => undefined);
  }

  async #discoverShards(type: "LATEST" | "TRIM_HORIZON"): Promise<void> {
    const { StreamDescription } = await this.#client.send(
      new DescribeStreamCommand({ StreamArn: this.#streamArn }),
    );
    for (const shard of StreamDescription?.Shards ?? []) {
      if (!shard.ShardId || this.#iterators.has(shard.ShardId)) continue;
      const { ShardIterator } = await this.#client.send(
        new GetShardIteratorCommand({
          StreamArn: this.#streamArn,
          ShardId: shard.ShardId,
          ShardIteratorType: type,
        }),
      );
      this.#iterators.set(shard.ShardId, ShardIterator);
    }
  }

  async #pollOnce(): Promise<void> {
    await this.#discoverShards("TRIM_HORIZON"); // shards opened since start: read them whole
    for (const [shardId, iterator] of this.#iterators) {
      if (!iterator) continue;
      const out = await this.#client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 100 }));
      this.#iterators.set(shardId, out.NextShardIterator);
      const batch = (out.Records ?? []).map(toLambdaRecord).filter(isTtlLeaseExpiry);
      if (batch.length > 0) await this.#deliver(batch);
    }
  }

  async #deliver(batch: TtlStreamRecord[]): Promise<void> {
    let pending = batch;
    for (let attempt = 0; pending.length > 0 && attempt <= this.#maxRetries; attempt++) {
      const { batchItemFailures } = await this.#handle(pending);
      const failed = new Set(batchItemFailures.map((f) => f.itemIdentifier));
      pending = pending.filter((r) => failed.has(r.dynamodb?.SequenceNumber ?? ""));
    }
    if (pending.length > 0)
      this.#onError(new Error(`${pending.length} TTL stream record(s) failed after retries`));
  }
}

/** Streams API record → the shape Lambda delivers to a DynamoDB stream handler. */
export function toLambdaRecord(record: _Record): TtlStreamRecord {
  const identity = record.userIdentity;
  return {
    ...(record.eventName ? { eventName: record.eventName } : {}),
    ...(identity
      ? {
          userIdentity: {
            ...(identity.Type ? { type: identity.Type } : {}),
            ...(identity.PrincipalId ? { principalId: identity.PrincipalId } : {}),
          },
        }
      : {}),
    dynamodb: {
      ...(record.dynamodb?.SequenceNumber ? { SequenceNumber: record.dynamodb.SequenceNumber } : {}),
      ...(record.dynamodb?.OldImage ? { OldImage: record.dynamodb.OldImage as Record<string, unknown> } : {}),
    },
  };
}
