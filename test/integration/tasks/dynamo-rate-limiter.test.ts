import { randomUUID } from "node:crypto";
import { Logger } from "@aws-lambda-powertools/logger";
import { DeleteCommand, GetCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import type { TaskLifecycle } from "../../../lib/app/lifecycle-steps.js";
import { handleTtlRecords } from "../../../lib/app/ttl-backstop.js";
import { RateLimitedError } from "../../../lib/domain/errors.js";
import type { AgentRef } from "../../../lib/domain/task.js";
import { errorResponse } from "../../../lib/http/errors.js";
import { toLambdaRecord } from "../../../lib/sandbox/stream-poller.js";
import { rateBucketKey, selfIndexKeys, TTL_ATTRIBUTE } from "../../../lib/store/table.js";
import { DynamoVendRateLimiter } from "../../../lib/tasks/dynamo-rate-limiter.js";
import { DEFAULT_VEND_RATE } from "../../../lib/tasks/limits.js";
import { asTtlDeletion, createTestTable, readStream, type TestTable } from "../../support/dynamodb.js";

let table: TestTable;

beforeAll(async () => {
  table = await createTestTable();
});

function newAgent(): AgentRef {
  return { issuer: "https://issuer.example", id: `agent-${randomUUID()}` };
}

/**
 * A clock the test moves by hand. It starts at the real time: a bucket item's TTL follows the
 * clock, and DynamoDB Local's TTL job (real time) would delete a bucket dated in the past.
 */
function manualClock() {
  let ms = Math.floor(Date.now() / 1000) * 1000;
  return {
    now: () => new Date(ms),
    advance: (byMs: number) => {
      ms += byMs;
    },
  };
}

function limiter(
  options: { capacity?: number; refillPerSecond?: number; now?: () => Date },
  on: TestTable = table,
) {
  return new DynamoVendRateLimiter({ client: on.doc, tableName: on.tableName, ...options });
}

async function rejection(promise: Promise<unknown>): Promise<RateLimitedError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RateLimitedError);
  return error as RateLimitedError;
}

describe("DynamoVendRateLimiter", () => {
  it("allows capacity vends at once, then answers 429 rate_limited with Retry-After", async () => {
    const clock = manualClock();
    const rate = limiter({ capacity: 3, refillPerSecond: 1, now: clock.now });
    const agent = newAgent();

    for (let i = 0; i < 3; i++) await rate.consume(agent);
    const error = await rejection(rate.consume(agent));

    const response = errorResponse(error, "req-1", new Logger({ logLevel: "SILENT" }));
    expect(response.status).toBe(429);
    expect(response.headers["Retry-After"]).toBe("1");
    expect(JSON.parse(response.body)).toEqual({
      error: { code: "rate_limited", message: "too many vends by this agent, slow down" },
    });
  });

  it("refills with elapsed time, never beyond capacity", async () => {
    const clock = manualClock();
    const rate = limiter({ capacity: 2, refillPerSecond: 1, now: clock.now });
    const agent = newAgent();
    await rate.consume(agent);
    await rate.consume(agent);
    await rejection(rate.consume(agent));

    clock.advance(999);
    await rejection(rate.consume(agent));
    clock.advance(1);
    await rate.consume(agent);
    await rejection(rate.consume(agent));

    clock.advance(60_000);
    await rate.consume(agent);
    await rate.consume(agent);
    await rejection(rate.consume(agent));
  });

  it("says how long until the next token in whole seconds", async () => {
    const clock = manualClock();
    const rate = limiter({ capacity: 1, refillPerSecond: 0.1, now: clock.now });
    const agent = newAgent();
    await rate.consume(agent);

    expect((await rejection(rate.consume(agent))).headers).toEqual({ "Retry-After": "10" });
    clock.advance(7_500);
    expect((await rejection(rate.consume(agent))).headers).toEqual({ "Retry-After": "3" });
    clock.advance(2_500);
    await rate.consume(agent);
  });

  it("defaults to DEFAULT_VEND_RATE's capacity (50) at once, and keeps one bucket per agent and kind", async () => {
    expect(DEFAULT_VEND_RATE.capacity).toBe(50);
    const clock = manualClock();
    const rate = limiter({ now: clock.now });
    const busy = newAgent();
    const other = newAgent();
    for (let i = 0; i < DEFAULT_VEND_RATE.capacity; i++) await rate.consume(busy);
    await rejection(rate.consume(busy));

    await rate.consume(other);
    await rate.consume({ issuer: "https://other-issuer.example", id: busy.id });
    // Refreshes draw from their own bucket: an agent out of vends still refreshes.
    await rate.consume(busy, "refresh");
  });

  it("lets exactly capacity of 20 concurrent vends through", async () => {
    const clock = manualClock();
    const rate = limiter({ capacity: 5, refillPerSecond: 1, now: clock.now });
    const agent = newAgent();

    const results = await Promise.allSettled(Array.from({ length: 20 }, () => rate.consume(agent)));

    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(5);
    const refused = results.flatMap((r) => (r.status === "rejected" ? [r.reason] : []));
    expect(refused).toHaveLength(15);
    for (const error of refused) expect(error).toBeInstanceOf(RateLimitedError);
  });

  it("expires its bucket once full again, carrying the index keys DynamoDB Local's TTL needs; a missing bucket is full", async () => {
    const clock = manualClock();
    const start = clock.now().getTime();
    // One token every 2 s; full (2 tokens) again 4 s after the last vend.
    const rate = limiter({ capacity: 2, refillPerSecond: 0.5, now: clock.now });
    const agent = newAgent();
    const key = rateBucketKey(agent.issuer, agent.id);
    const get = async () =>
      (await table.doc.send(new GetCommand({ TableName: table.tableName, Key: key, ConsistentRead: true })))
        .Item;

    await rate.consume(agent);
    expect(await get()).toEqual({
      ...key,
      ...selfIndexKeys(key),
      type: "rate-bucket",
      nextTokenAt: start + 2_000,
      // Full again at start + 4 s; a minute's margin.
      [TTL_ATTRIBUTE]: start / 1000 + 4 + 60,
    });
    clock.advance(1_000);
    await rate.consume(agent);
    await rejection(rate.consume(agent));
    const emptied = await get();
    expect(emptied).toMatchObject({ nextTokenAt: start + 4_000, [TTL_ATTRIBUTE]: start / 1000 + 1 + 4 + 60 });
    // When TTL deletes it, the bucket it held was full: no vend is lost or gained.
    expect(emptied?.nextTokenAt).toBeLessThanOrEqual((emptied?.[TTL_ATTRIBUTE] as number) * 1000);

    // DynamoDB TTL deletes it (by hand here: DynamoDB Local's sweep runs on real time). Its
    // REMOVE reaches the TTL backstop, which leaves a rate bucket alone.
    await table.doc.send(new DeleteCommand({ TableName: table.tableName, Key: key }));
    const removed = (await readStream(table.streams, table.streamArn)).filter(
      (r) => r.eventName === "REMOVE" && r.dynamodb?.Keys?.pk?.S === key.pk,
    );
    expect(removed).toHaveLength(1);
    const lifecycle = {
      backstop: async () => {
        throw new Error("a rate bucket is no task lease");
      },
      prune: async () => {
        throw new Error("a rate bucket is no prune lease");
      },
    } as unknown as TaskLifecycle;
    await expect(
      handleTtlRecords(removed.map(asTtlDeletion).map(toLambdaRecord), lifecycle),
    ).resolves.toEqual({ batchItemFailures: [] });

    // A missing bucket is a full one, even at the same instant.
    await rate.consume(agent);
    await rate.consume(agent);
    await rejection(rate.consume(agent));
  });

  it("refuses settings that make no bucket", () => {
    expect(() => limiter({ capacity: 0 })).toThrow(/capacity/);
    expect(() => limiter({ capacity: 1.5 })).toThrow(/capacity/);
    expect(() => limiter({ refillPerSecond: 0 })).toThrow(/refillPerSecond/);
  });
});
