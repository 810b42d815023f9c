import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { InvalidTokenError, UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import { DynamoReplayCache } from "../../../lib/identity/dynamo-replay-cache.js";
import { replayKey } from "../../../lib/store/table.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";

const ISSUER = "https://issuer.example";

describe("DynamoReplayCache", () => {
  let table: TestTable;
  let now: Date;
  let cache: DynamoReplayCache;
  const seconds = () => Math.floor(now.getTime() / 1000);

  beforeAll(async () => {
    table = await createTestTable();
    now = new Date();
    cache = new DynamoReplayCache({
      client: table.doc,
      tableName: table.tableName,
      now: () => now,
      graceSeconds: 60,
    });
  });

  function jti() {
    return `jti-${Math.random().toString(36).slice(2)}`;
  }

  it("accepts a token id once and refuses it the second time with invalid_token", async () => {
    const id = jti();

    await cache.consume(ISSUER, id, seconds() + 300);
    const replay = cache.consume(ISSUER, id, seconds() + 300);

    await expect(replay).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(replay).rejects.toMatchObject({
      code: "invalid_token",
      status: 401,
      message: "token already used",
      headers: { "WWW-Authenticate": 'Bearer error="invalid_token"' },
    });
  });

  it("lets exactly one of many concurrent uses through", async () => {
    const id = jti();

    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => cache.consume(ISSUER, id, seconds() + 300)),
    );

    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results.filter((r) => r.status === "rejected")) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(InvalidTokenError);
    }
  });

  it("keeps the same jti of different issuers apart, '#' included", async () => {
    const id = jti();
    // Naively joined with '#', the last two would share a key.
    const uses = [
      [ISSUER, id],
      ["https://other.example", id],
      [`${ISSUER}#x`, "y"],
      [ISSUER, "x#y"],
    ] as const;

    for (const [issuer, tokenId] of uses) {
      await expect(cache.consume(issuer, tokenId, seconds() + 300), `${issuer} ${tokenId}`).resolves.toBe(
        undefined,
      );
    }
    expect(new Set(uses.map(([issuer, tokenId]) => replayKey(issuer, tokenId).pk)).size).toBe(uses.length);
    for (const [issuer, tokenId] of uses) {
      const raw = await table.doc.send(
        new GetCommand({ TableName: table.tableName, Key: replayKey(issuer, tokenId), ConsistentRead: true }),
      );
      expect(raw.Item, `${issuer} ${tokenId}`).toMatchObject({ type: "replay", exp: seconds() + 300 });
      await expect(cache.consume(issuer, tokenId, seconds() + 300)).rejects.toBeInstanceOf(InvalidTokenError);
    }
  });

  it("blocks until exp plus the grace period, then lets the entry be reused before TTL deletes it", async () => {
    const id = jti();
    const start = now;
    const exp = seconds() + 300;
    await cache.consume(ISSUER, id, exp);

    try {
      // Past exp but within the grace that covers the verifier's clock tolerance: still a replay.
      now = new Date((exp + 59) * 1000);
      await expect(cache.consume(ISSUER, id, exp)).rejects.toBeInstanceOf(InvalidTokenError);

      now = new Date((exp + 61) * 1000);
      await expect(cache.consume(ISSUER, id, exp + 600)).resolves.toBeUndefined();
    } finally {
      now = start;
    }
  });

  it("keeps a token that is already past exp blocked for the grace period", async () => {
    const id = jti();
    const exp = seconds() - 10;

    await cache.consume(ISSUER, id, exp);

    await expect(cache.consume(ISSUER, id, exp)).rejects.toBeInstanceOf(InvalidTokenError);
    const raw = await table.doc.send(
      new GetCommand({ TableName: table.tableName, Key: replayKey(ISSUER, id) }),
    );
    expect(raw.Item).toMatchObject({ type: "replay", exp, ttlEpoch: seconds() + 60 });
  });

  it("reports DynamoDB failures as upstream_unavailable, not as a bad token", async () => {
    const broken = new DynamoReplayCache({ client: table.doc, tableName: "jitv-no-such-table" });

    await expect(broken.consume(ISSUER, jti(), seconds() + 300)).rejects.toBeInstanceOf(
      UpstreamUnavailableError,
    );
  });
});
