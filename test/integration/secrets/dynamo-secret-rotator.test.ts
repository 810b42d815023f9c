import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { InvalidRequestError } from "../../../lib/domain/errors.js";
import { DynamoSecretRotator, sandboxSecretKey } from "../../../lib/secrets/dynamo-secret-rotator.js";
import { secretNameFromArn } from "../../../lib/secrets/secret-arn.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function arnOf(name: string, suffix = "AbCdEf", region = "us-east-1"): string {
  return `arn:aws:secretsmanager:${region}:123456789012:secret:${name}-${suffix}`;
}

describe("DynamoSecretRotator", () => {
  let table: TestTable;
  let rotator: DynamoSecretRotator;
  let clock = new Date("2026-03-01T12:00:00.000Z");

  beforeAll(async () => {
    table = await createTestTable();
    rotator = new DynamoSecretRotator({ client: table.doc, tableName: table.tableName, now: () => clock });
  });

  async function rawItem(arn: string) {
    const out = await table.doc.send(
      new GetCommand({ TableName: table.tableName, Key: sandboxSecretKey(arn), ConsistentRead: true }),
    );
    return out.Item;
  }

  it("changes the version id on the very first rotation of a secret it has never seen", async () => {
    const arn = arnOf("db-creds");
    clock = new Date("2026-03-01T12:00:00.000Z");

    await rotator.rotate(arn);

    const item = await rawItem(arn);
    expect(item).toStrictEqual({
      pk: `SANDBOXSECRET#${encodeURIComponent(arn)}`,
      sk: "SECRET",
      type: "sandbox-secret",
      gsi1pk: "SANDBOXSECRETNAME#db-creds",
      gsi1sk: "SECRET",
      arn,
      name: "db-creds",
      currentVersionId: expect.stringMatching(UUID),
      previousVersionId: expect.stringMatching(UUID),
      rotatedAt: "2026-03-01T12:00:00.000Z",
      rotations: 1,
    });
    expect(item?.currentVersionId).not.toBe(item?.previousVersionId);
    // The sandbox has no values: nothing but the version history is stored.
    expect(Object.keys(item ?? {}).some((key) => /value|secretString|password/i.test(key))).toBe(false);
  });

  it("moves to a new version on each rotation, keeping the one before as previous", async () => {
    const arn = arnOf("api-key", "Zz9Yx8");
    await rotator.ensure(arn);
    const seeded = await rotator.describe(arn);

    clock = new Date("2026-03-01T12:05:00.000Z");
    await rotator.rotate(arn);
    const first = await rotator.describe(arn);
    clock = new Date("2026-03-01T12:10:00.000Z");
    await rotator.rotate(arn);
    const second = await rotator.describe(arn);

    expect(seeded?.versionId).toMatch(UUID);
    expect(first?.versionId).toMatch(UUID);
    expect(second?.versionId).toMatch(UUID);
    expect(new Set([seeded?.versionId, first?.versionId, second?.versionId]).size).toBe(3);
    expect(await rawItem(arn)).toMatchObject({
      currentVersionId: second?.versionId,
      previousVersionId: first?.versionId,
      rotatedAt: "2026-03-01T12:10:00.000Z",
      rotations: 2,
    });
  });

  it("ensure seeds a version once and leaves an existing secret alone", async () => {
    const arn = arnOf("webhook-token");

    await Promise.all([rotator.ensure(arn), rotator.ensure(arn), rotator.ensure(arn)]);
    const seeded = await rawItem(arn);
    await rotator.ensure(arn);

    expect(seeded).toMatchObject({ rotations: 0, currentVersionId: expect.stringMatching(UUID) });
    expect(seeded).not.toHaveProperty("previousVersionId");
    expect(await rawItem(arn)).toStrictEqual(seeded);
  });

  it("describes a secret by ARN and by name, and nothing for one it has never seen", async () => {
    const arn = arnOf("reports/signing-key", "Q1w2E3");
    await rotator.rotate(arn);
    const byArn = await rotator.describe(arn);

    expect(byArn).toStrictEqual({
      name: "reports/signing-key",
      arn,
      versionId: (await rawItem(arn))?.currentVersionId,
    });
    await expect(rotator.describe("reports/signing-key")).resolves.toStrictEqual(byArn);
    await expect(rotator.describe("reports/other-key")).resolves.toBeUndefined();
    await expect(rotator.describe(arnOf("reports/signing-key", "XXXXXX"))).resolves.toBeUndefined();
  });

  it("describes by name the most recently rotated of secrets sharing a name", async () => {
    const east = arnOf("shared-name", "AAAAAA", "us-east-1");
    const west = arnOf("shared-name", "BBBBBB", "us-west-2");
    clock = new Date("2026-03-02T08:00:00.000Z");
    await rotator.rotate(west);
    clock = new Date("2026-03-02T09:00:00.000Z");
    await rotator.rotate(east);

    await expect(rotator.describe("shared-name")).resolves.toMatchObject({ arn: east });
    clock = new Date("2026-03-02T10:00:00.000Z");
    await rotator.rotate(west);
    await expect(rotator.describe("shared-name")).resolves.toMatchObject({ arn: west });
  });

  it("loses no rotation when 10 run concurrently", async () => {
    const arn = arnOf("hot-secret");
    await rotator.ensure(arn);
    const seeded = await rotator.describe(arn);
    // Watch every rotation update: which version it moved from and to, and whether it took effect.
    const updates: { from: string; to: string; applied: boolean }[] = [];
    const watched = {
      send: async (command: Parameters<typeof table.doc.send>[0]) => {
        const values = (command.input as { ExpressionAttributeValues?: Record<string, unknown> })
          .ExpressionAttributeValues;
        if (typeof values?.[":next"] !== "string") return table.doc.send(command);
        const update = { from: String(values[":previous"]), to: values[":next"], applied: false };
        updates.push(update);
        const out = await table.doc.send(command);
        update.applied = true;
        return out;
      },
    } as unknown as typeof table.doc;
    const racer = new DynamoSecretRotator({ client: watched, tableName: table.tableName });

    await Promise.all(Array.from({ length: 10 }, () => racer.rotate(arn)));

    const item = await rawItem(arn);
    expect(item?.rotations).toBe(10);
    const applied = updates.filter((u) => u.applied);
    expect(applied).toHaveLength(10);
    expect(applied.map((u) => u.to)).toContain(item?.currentVersionId);
    // No lost update: the applied rotations form one chain from the seed to the final version,
    // each moving from the version the one before made current.
    const next = new Map(applied.map((u) => [u.from, u.to]));
    expect(next.size).toBe(10);
    let version = seeded?.versionId;
    for (let i = 0; i < 10; i++) version = version === undefined ? undefined : next.get(version);
    expect(version).toBe(item?.currentVersionId);
  });

  it("treats secrets in different regions as different secrets", async () => {
    const east = arnOf("per-region", "CcCcCc", "us-east-1");
    const west = arnOf("per-region", "CcCcCc", "eu-west-1");
    await rotator.rotate(east);

    await expect(rotator.describe(west)).resolves.toBeUndefined();
    expect((await rawItem(east))?.rotations).toBe(1);
  });

  it.each([
    ["a role ARN", "arn:aws:iam::123456789012:role/jitv/reader"],
    ["a pattern", "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-creds-??????"],
    ["a name", "db-creds"],
  ])("refuses to rotate %s and writes nothing", async (_what, arn) => {
    await expect(rotator.rotate(arn)).rejects.toBeInstanceOf(InvalidRequestError);
    expect(await rawItem(arn)).toBeUndefined();
  });
});

describe("secretNameFromArn", () => {
  it.each([
    ["arn:aws:secretsmanager:us-east-1:123456789012:secret:db-creds-AbCdEf", "db-creds"],
    ["arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db/creds-a1B2c3", "prod/db/creds"],
    ["arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:key-000000", "key"],
    ["arn:aws:secretsmanager:us-east-1:123456789012:secret:nosuffix", "nosuffix"],
  ])("takes the name out of %s", (arn, name) => {
    expect(secretNameFromArn(arn)).toBe(name);
  });
});
