import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { InvalidTokenError, RateLimitedError, UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import type { Task } from "../../../lib/domain/task.js";
import { rateBucketKey, replayKey, taskKey } from "../../../lib/store/table.js";
import { DynamoVendRateLimiter } from "../../../lib/tasks/dynamo-rate-limiter.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import { ReplayedTokenError, type SingleUseToken } from "../../../lib/tasks/repository.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { makeTask } from "./fixtures.js";

// A vend's claims — its rate token and its tokens' single use — are conditions of the task's one
// transaction (DynamoTaskRepository.create), on DynamoDB Local: all or nothing, exact under
// concurrency, refused in a fixed order.

const ISSUER = "https://issuer.example";
let table: TestTable;
let now: Date;
const seconds = () => Math.floor(now.getTime() / 1000);
/** A repository as one process holds it (each keeps its own guess of the agents' buckets). */
const processRepo = (rate = { capacity: 3, refillPerSecond: 1 }) =>
  new DynamoTaskRepository({
    client: table.doc,
    tableName: table.tableName,
    now: () => now,
    vendRate: rate,
    replayGraceSeconds: 60,
  });
let repo: DynamoTaskRepository;

beforeAll(async () => {
  table = await createTestTable();
  now = new Date();
  repo = processRepo();
});

function agent(): Task["agent"] {
  return { issuer: ISSUER, id: `agent-${Math.random().toString(36).slice(2)}` };
}

function token(role: SingleUseToken["role"] = "agent", issuer = ISSUER, jti = newJti()): SingleUseToken {
  return { issuer, jti, expiresAt: seconds() + 300, role };
}

function newJti() {
  return `jti-${Math.random().toString(36).slice(2)}`;
}

async function rawItem(key: { pk: string; sk: string }) {
  const out = await table.doc.send(
    new GetCommand({ TableName: table.tableName, Key: key, ConsistentRead: true }),
  );
  return out.Item;
}

describe("a create's tokens: each jti vends once", () => {
  it("refuses a spent jti 401 invalid_token, naming which token, and writes no task", async () => {
    const used = token();
    await repo.create(makeTask(), { tokens: [used] });

    const second = makeTask();
    const replay = repo.create(second, { tokens: [{ ...used, role: "subject" }] });

    await expect(replay).rejects.toBeInstanceOf(ReplayedTokenError);
    await expect(replay).rejects.toBeInstanceOf(InvalidTokenError);
    await expect(replay).rejects.toMatchObject({
      code: "invalid_token",
      status: 401,
      message: "token already used",
      token: "subject",
      headers: { "WWW-Authenticate": 'Bearer error="invalid_token"' },
    });
    expect(await rawItem(taskKey(second.taskId))).toBeUndefined();
  });

  it("lets exactly one of many concurrent vends with the same jti through", async () => {
    const used = token();
    const tasks = Array.from({ length: 10 }, () => makeTask());

    const results = await Promise.allSettled(tasks.map((task) => repo.create(task, { tokens: [used] })));

    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results.filter((r) => r.status === "rejected")) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ReplayedTokenError);
    }
    const stored = await Promise.all(tasks.map((task) => rawItem(taskKey(task.taskId))));
    expect(stored.filter(Boolean)).toHaveLength(1);
  });

  it("keeps the same jti of different issuers apart, '#' included", async () => {
    const id = newJti();
    // Naively joined with '#', the last two would share a key.
    const uses = [
      [ISSUER, id],
      ["https://other.example", id],
      [`${ISSUER}#x`, "y"],
      [ISSUER, "x#y"],
    ] as const;

    for (const [issuer, jti] of uses) {
      await expect(repo.create(makeTask(), { tokens: [token("agent", issuer, jti)] })).resolves.toMatchObject(
        {
          created: true,
        },
      );
    }
    expect(new Set(uses.map(([issuer, jti]) => replayKey(issuer, jti).pk)).size).toBe(uses.length);
    for (const [issuer, jti] of uses) {
      expect(await rawItem(replayKey(issuer, jti)), `${issuer} ${jti}`).toMatchObject({
        type: "replay",
        exp: seconds() + 300,
      });
      await expect(repo.create(makeTask(), { tokens: [token("agent", issuer, jti)] })).rejects.toBeInstanceOf(
        ReplayedTokenError,
      );
    }
  });

  it("blocks until exp plus the grace period, then lets the entry be reused before TTL deletes it", async () => {
    const used = token();
    const start = now;
    await repo.create(makeTask(), { tokens: [used] });
    try {
      // Past exp but within the grace that covers the verifier's clock tolerance: still a replay.
      now = new Date((used.expiresAt + 59) * 1000);
      await expect(repo.create(makeTask(), { tokens: [used] })).rejects.toBeInstanceOf(ReplayedTokenError);

      now = new Date((used.expiresAt + 61) * 1000);
      await expect(repo.create(makeTask(), { tokens: [used] })).resolves.toMatchObject({ created: true });
    } finally {
      now = start;
    }
  });

  it("keeps a token that is already past exp blocked for the grace period", async () => {
    const used = { ...token(), expiresAt: seconds() - 10 };

    await repo.create(makeTask(), { tokens: [used] });

    await expect(repo.create(makeTask(), { tokens: [used] })).rejects.toBeInstanceOf(ReplayedTokenError);
    expect(await rawItem(replayKey(ISSUER, used.jti))).toMatchObject({
      type: "replay",
      exp: used.expiresAt,
      ttlEpoch: seconds() + 60,
    });
  });

  it("spends neither token when one of them was already spent (a replayed subject token never burns the agent's)", async () => {
    const subject = token("subject");
    await repo.create(makeTask(), { tokens: [subject] });
    const fresh = token("agent");

    await expect(repo.create(makeTask(), { tokens: [subject, fresh] })).rejects.toMatchObject({
      token: "subject",
    });

    expect(await rawItem(replayKey(ISSUER, fresh.jti))).toBeUndefined();
    await expect(repo.create(makeTask(), { tokens: [fresh] })).resolves.toMatchObject({ created: true });
  });

  it("reports DynamoDB failures as upstream_unavailable, not as a bad token", async () => {
    const broken = new DynamoTaskRepository({ client: table.doc, tableName: "jitv-no-such-table" });

    await expect(broken.create(makeTask(), { rate: true, tokens: [token()] })).rejects.toBeInstanceOf(
      UpstreamUnavailableError,
    );
  });
});

describe("a create's rate token: the agent's vend bucket, in the same transaction", () => {
  it("allows capacity vends at once, then answers 429 with Retry-After, writing no task", async () => {
    const who = agent();
    for (let i = 0; i < 3; i++) await repo.create(makeTask({ agent: who }), { rate: true });

    const refused = makeTask({ agent: who });
    const limited = repo.create(refused, { rate: true, tokens: [token()] });

    await expect(limited).rejects.toBeInstanceOf(RateLimitedError);
    await expect(limited).rejects.toMatchObject({ status: 429, headers: { "Retry-After": "1" } });
    expect(await rawItem(taskKey(refused.taskId))).toBeUndefined();
  });

  it("refuses the rate before a replayed token, and a rate-limited vend spends no token", async () => {
    const who = agent();
    const spent = token();
    await repo.create(makeTask({ agent: who }), { rate: true, tokens: [spent] });
    await repo.create(makeTask({ agent: who }), { rate: true });
    await repo.create(makeTask({ agent: who }), { rate: true });
    const fresh = token();

    await expect(
      repo.create(makeTask({ agent: who }), { rate: true, tokens: [spent] }),
    ).rejects.toBeInstanceOf(RateLimitedError);
    await expect(
      repo.create(makeTask({ agent: who }), { rate: true, tokens: [fresh] }),
    ).rejects.toBeInstanceOf(RateLimitedError);
    expect(await rawItem(replayKey(ISSUER, fresh.jti))).toBeUndefined();
  });

  it("takes no rate token and spends no jti when the active slots are all taken", async () => {
    const who = agent();
    await repo.create(makeTask({ agent: who }), { rate: true, maxActive: 1 });
    const fresh = token();

    await expect(
      repo.create(makeTask({ agent: who }), { rate: true, maxActive: 1, tokens: [fresh] }),
    ).rejects.toMatchObject({ status: 429, message: "too many active tasks for this template" });

    expect(await rawItem(replayKey(ISSUER, fresh.jti))).toBeUndefined();
    // One token taken of three: two more vends (of another template) pass, the third does not.
    await repo.create(makeTask({ agent: who, template: "other" }), { rate: true });
    await repo.create(makeTask({ agent: who, template: "other" }), { rate: true });
    await expect(
      repo.create(makeTask({ agent: who, template: "other" }), { rate: true }),
    ).rejects.toMatchObject({
      message: "too many vends by this agent, slow down",
    });
  });

  it("lets exactly capacity of 10 concurrent vends through", async () => {
    const who = agent();
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => repo.create(makeTask({ agent: who }), { rate: true })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
    for (const r of results.filter((r) => r.status === "rejected")) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(RateLimitedError);
    }
  });

  it("draws on the same bucket across processes and with the limiter, whatever each process last saw", async () => {
    const who = agent();
    const a = processRepo();
    const b = processRepo();
    const limiter = new DynamoVendRateLimiter({
      client: table.doc,
      tableName: table.tableName,
      now: () => now,
      capacity: 3,
      refillPerSecond: 1,
    });
    // `a` remembers the bucket idle-then-busy; `b` has never seen it (guesses idle): both are corrected.
    await a.create(makeTask({ agent: who }), { rate: true });
    await b.create(makeTask({ agent: who }), { rate: true });
    await limiter.consume(who);

    await expect(a.create(makeTask({ agent: who }), { rate: true })).rejects.toBeInstanceOf(RateLimitedError);
    await expect(b.create(makeTask({ agent: who }), { rate: true })).rejects.toBeInstanceOf(RateLimitedError);
    const bucket = await rawItem(rateBucketKey(who.issuer, who.id));
    expect(bucket).toMatchObject({ type: "rate-bucket", nextTokenAt: now.getTime() + 3000 });

    // Once the bucket is idle again, `a` (which last saw it full) writes the idle branch after one refusal.
    const start = now;
    try {
      now = new Date(start.getTime() + 10_000);
      await expect(a.create(makeTask({ agent: who }), { rate: true })).resolves.toMatchObject({
        created: true,
      });
      expect(await rawItem(rateBucketKey(who.issuer, who.id))).toMatchObject({
        nextTokenAt: now.getTime() + 1000,
      });
    } finally {
      now = start;
    }
  });
});

describe("an Idempotency-Key replay", () => {
  it("answers with the existing task and still spends its token and rate", async () => {
    const who = agent();
    const first = makeTask({ agent: who, idempotencyKey: "k-1" });
    await repo.create(first, { rate: true, tokens: [token()] });
    const replayToken = token();

    const replay = await repo.create(makeTask({ agent: who, idempotencyKey: "k-1" }), {
      rate: true,
      tokens: [replayToken],
    });

    expect(replay).toMatchObject({ created: false, task: { taskId: first.taskId } });
    expect(await rawItem(replayKey(ISSUER, replayToken.jti))).toMatchObject({ type: "replay" });
    await expect(
      repo.create(makeTask({ agent: who, idempotencyKey: "k-1" }), { tokens: [replayToken] }),
    ).rejects.toBeInstanceOf(ReplayedTokenError);
    // Three tokens of three were drawn: the first vend and the replay took two, this one the last.
    await repo.create(makeTask({ agent: who }), { rate: true });
    await expect(repo.create(makeTask({ agent: who }), { rate: true })).rejects.toBeInstanceOf(
      RateLimitedError,
    );
  });
});
