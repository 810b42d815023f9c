import { randomUUID } from "node:crypto";
import { Logger } from "@aws-lambda-powertools/logger";
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { RateLimitedError } from "../../../lib/domain/errors.js";
import type { AgentRef } from "../../../lib/domain/task.js";
import { errorResponse } from "../../../lib/http/errors.js";
import { startDynamoDbLocal } from "../../../lib/sandbox/dynamodb-local.js";
import { rateBucketKey } from "../../../lib/store/table.js";
import { DynamoVendRateLimiter } from "../../../lib/tasks/dynamo-rate-limiter.js";
import { DEFAULT_VEND_RATE } from "../../../lib/tasks/limits.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";

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

  it("lets its bucket expire once full again, carrying the index keys DynamoDB Local's TTL needs", async () => {
    // A DynamoDB Local of its own: its TTL job pages through 20 items and then sleeps 10 s,
    // table after table, so on the suite's shared instance the wait grows with every test.
    const ddb = await startDynamoDbLocal({ port: 0 });
    onTestFinished(() => ddb.stop());
    const own = await createTestTable(ddb.endpoint);
    const agent = newAgent();
    // A bucket used an hour ago is full now, so its TTL has passed.
    await limiter({ capacity: 2, now: () => new Date(Date.now() - 3_600_000) }, own).consume(agent);
    const key = rateBucketKey(agent.issuer, agent.id);
    const get = () =>
      own.doc.send(new GetCommand({ TableName: own.tableName, Key: key, ConsistentRead: true }));
    expect((await get()).Item).toMatchObject({ gsi1pk: key.pk, gsi2pk: key.pk, type: "rate-bucket" });

    const deadline = Date.now() + 60_000;
    while ((await get()).Item && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    expect((await get()).Item).toBeUndefined();
    // A missing bucket is a full one.
    const rate = limiter({ capacity: 2 }, own);
    await rate.consume(agent);
    await rate.consume(agent);
    await rejection(rate.consume(agent));
  }, 75_000);

  it("refuses settings that make no bucket", () => {
    expect(() => limiter({ capacity: 0 })).toThrow(/capacity/);
    expect(() => limiter({ capacity: 1.5 })).toThrow(/capacity/);
    expect(() => limiter({ refillPerSecond: 0 })).toThrow(/refillPerSecond/);
  });
});
