import { GetCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { beforeEach, describe, expect, it } from "vitest";
import { CedarAuthorizer } from "../../../lib/authz/cedar-authorizer.js";
import { DynamoPolicyStore } from "../../../lib/authz/dynamo-policy-store.js";
import { ConflictError, InvalidRequestError } from "../../../lib/domain/errors.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { policySetKey } from "../../../lib/store/table.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";

const LONG_TTL = `@id("long-ttl")
@reason("at most 30 minutes")
forbid (principal, action == Jitv::Action::"Vend", resource) when { context.ttlSeconds > 1800 };`;
const NEEDS_PURPOSE = `@id("needs-purpose")
forbid (principal, action == Jitv::Action::"Vend", resource) unless { context has purpose };`;
const HOURS = `@id("night-freeze")
forbid (principal, action == Jitv::Action::"Vend", resource) when { context.hour < 6 };`;

describe("DynamoPolicyStore", () => {
  let table: TestTable;
  let store: DynamoPolicyStore;
  const now = new Date("2026-03-03T10:00:00.000Z");

  beforeEach(async () => {
    table = await createTestTable();
    store = new DynamoPolicyStore({ client: table.doc, tableName: table.tableName, now: () => now });
  });

  it("starts empty", async () => {
    await expect(store.current()).resolves.toEqual({ version: "", text: "" });
    await expect(store.list()).resolves.toEqual([]);
    await expect(store.get("limits")).resolves.toBeUndefined();
  });

  it("keeps every version and moves the current pointer", async () => {
    await expect(store.put("limits", LONG_TTL, 0)).resolves.toEqual({ name: "limits", version: 1 });
    await expect(store.put("limits", `${LONG_TTL}\n${NEEDS_PURPOSE}`, 1)).resolves.toEqual({
      name: "limits",
      version: 2,
    });

    await expect(store.get("limits")).resolves.toEqual({
      name: "limits",
      version: 2,
      text: `${LONG_TTL}\n${NEEDS_PURPOSE}`,
      updatedAt: now.toISOString(),
    });
    await expect(store.get("limits", 1)).resolves.toMatchObject({ version: 1, text: LONG_TTL });
    await expect(store.get("limits", 3)).resolves.toBeUndefined();
    const versions = await table.doc.send(
      new QueryCommand({
        TableName: table.tableName,
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :v)",
        ExpressionAttributeValues: { ":pk": "POLICYSET#limits", ":v": "V#" },
      }),
    );
    expect(versions.Items?.map((i) => i.sk)).toEqual(["V#0000000001", "V#0000000002"]);
    const pointer = await table.doc.send(
      new GetCommand({ TableName: table.tableName, Key: policySetKey("limits") }),
    );
    expect(pointer.Item).toMatchObject({
      pk: "POLICYSET#limits",
      sk: "CURRENT",
      type: "policy-set",
      version: 2,
    });
  });

  it("combines all sets into one policy set whose version changes with any of them", async () => {
    await store.put("limits", LONG_TTL);
    await store.put("hours", HOURS);
    const first = await store.current();

    expect(first.version).toBe("hours@1,limits@1");
    expect(first.text).toContain(HOURS);
    expect(first.text).toContain(LONG_TTL);
    expect(first.text.indexOf(HOURS)).toBeLessThan(first.text.indexOf(LONG_TTL));

    await store.put("limits", NEEDS_PURPOSE);
    const second = await store.current();

    expect(second.version).toBe("hours@1,limits@2");
    expect(second.text).toContain(NEEDS_PURPOSE);
    expect(second.text).not.toContain(LONG_TTL);
    await expect(store.list()).resolves.toEqual([
      { name: "hours", version: 1, updatedAt: now.toISOString(), policyIds: ["night-freeze"] },
      { name: "limits", version: 2, updatedAt: now.toISOString(), policyIds: ["needs-purpose"] },
    ]);
  });

  it("refuses a stale expected version and keeps the current one", async () => {
    await store.put("limits", LONG_TTL, 0);
    await store.put("limits", NEEDS_PURPOSE, 1);

    const stale = store.put("limits", HOURS, 1);

    await expect(stale).rejects.toBeInstanceOf(ConflictError);
    await expect(stale).rejects.toThrow("policy set limits is at version 2, not 1");
    await expect(store.put("limits", HOURS, 0)).rejects.toBeInstanceOf(ConflictError);
    await expect(store.get("limits")).resolves.toMatchObject({ version: 2, text: NEEDS_PURPOSE });
  });

  it("lets exactly one of concurrent writers with the same expected version win", async () => {
    await store.put("limits", LONG_TTL, 0);
    const texts = Array.from(
      { length: 8 },
      (_, i) => `@id("writer-${i}") forbid (principal, action, resource);`,
    );

    const results = await Promise.allSettled(texts.map((text) => store.put("limits", text, 1)));

    const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
    const lost = results.filter((r) => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(7);
    for (const r of lost) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ConflictError);
    const winner = won[0] ?? -1;
    await expect(store.get("limits")).resolves.toMatchObject({ version: 2, text: texts[winner] });
    await expect(store.get("limits", 3)).resolves.toBeUndefined();
  });

  it("stacks concurrent writers without an expected version, losing none", async () => {
    const texts = Array.from(
      { length: 4 },
      (_, i) => `@id("writer-${i}") forbid (principal, action, resource);`,
    );

    const results = await Promise.all(texts.map((text) => store.put("limits", text)));

    expect(results.map((r) => r.version).sort()).toEqual([1, 2, 3, 4]);
    const stored = await Promise.all([1, 2, 3, 4].map((v) => store.get("limits", v)));
    expect(stored.map((s) => s?.text).sort()).toEqual([...texts].sort());
  });

  it.each([
    [
      "a syntax error",
      '@id("x") forbid (principal, action, resource) when { context.ttlSeconds > };',
      /line 1, column \d+/,
    ],
    [
      "a schema error",
      '@id("x") forbid (principal, action, resource) when { context.ttl > 1 };',
      /attribute `ttl`/,
    ],
    ["a policy without @id", "forbid (principal, action, resource);", /needs an @id/],
  ])("refuses %s with Cedar's message and leaves the current version unchanged", async (_, text, message) => {
    await store.put("limits", LONG_TTL, 0);

    const put = store.put("limits", text, 1);

    await expect(put).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(put).rejects.toThrow(message);
    await expect(store.get("limits")).resolves.toMatchObject({ version: 1, text: LONG_TTL });
    await expect(store.get("limits", 2)).resolves.toBeUndefined();
    await expect(store.current()).resolves.toMatchObject({ version: "limits@1" });
  });

  it("refuses an @id another set already uses, and a bad name or version", async () => {
    await store.put("limits", LONG_TTL);

    await expect(store.put("more-limits", LONG_TTL)).rejects.toThrow(
      'invalid policy set: @id "long-ttl" is already used in policy set limits',
    );
    await expect(store.put("Bad Name", HOURS)).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(store.put("hours", HOURS, -1)).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(store.list()).resolves.toHaveLength(1);
  });

  it("refuses an @id of the built-in baseline, in any set, saying so", async () => {
    const clash = `@id("zone-admins") permit (principal, action == Jitv::Action::"ReadTask", resource);`;

    const put = store.put("baseline", clash, 0);
    await expect(put).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(put).rejects.toThrow(
      `invalid policy set: @id "zone-admins" is already used by jitv's built-in baseline policies; choose another @id`,
    );
    await expect(store.put("limits", `${LONG_TTL}\n${clash}`)).rejects.toThrow(/"zone-admins".*built-in/);
    await expect(store.list()).resolves.toEqual([]);
  });

  it("feeds the Cedar authorizer, which picks up a new version after cacheMs", async () => {
    let clock = now.getTime();
    const authz = new CedarAuthorizer({ store, now: () => new Date(clock), cacheMs: 5000 });
    const template = parseTemplate({
      name: "reports-read",
      zone: "workforce",
      roleArn: "arn:aws:iam::123456789012:role/jitv/reader",
      sessionPolicy: {
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::reports/*" }],
      },
      agents: [{ issuer: "https://agents.example", subjects: ["agent-a"] }],
    });
    const request = {
      agent: {
        profile: "agents",
        issuer: "https://agents.example",
        kind: "agent" as const,
        zone: "workforce" as const,
        subject: "agent-a",
        id: "agent-a",
        groups: [],
        expiresAt: 2_000_000_000,
        claims: {},
      },
      template,
      ttlSeconds: 3600,
      parameters: {},
    };

    expect(await authz.authorizeVend(request)).toMatchObject({ allowed: true, policyVersion: "" });

    await store.put("limits", LONG_TTL, 0);
    expect((await authz.authorizeVend(request)).allowed).toBe(true);

    clock += 5000;
    expect(await authz.authorizeVend(request)).toEqual({
      allowed: false,
      reason: "forbidden by policy long-ttl (at most 30 minutes)",
      policies: ["long-ttl"],
      policyVersion: "limits@1",
    });
  });
});
