import { GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { InternalError, UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import { parseTemplate, type TaskTemplate } from "../../../lib/domain/template.js";
import { templateKey } from "../../../lib/store/table.js";
import { DynamoTaskRepository } from "../../../lib/tasks/dynamo-repository.js";
import { DynamoTemplateStore } from "../../../lib/tasks/dynamo-template-store.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { makeTask } from "./fixtures.js";

function template(name: string, overrides: Record<string, unknown> = {}): TaskTemplate {
  return parseTemplate({
    name,
    description: "Read one tenant's reports under a prefix",
    zone: "customer",
    roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
    sessionPolicy: {
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Action: ["s3:GetObject"],
          Resource: ["arn:aws:s3:::reports/{{tenant}}/{{params.prefix}}/*"],
        },
      ],
    },
    parameters: { prefix: { pattern: "^[a-z0-9-]{1,32}$" } },
    agents: [{ issuer: "https://issuer.example", subjects: ["agent-a"] }],
    ttl: { defaultSeconds: 900, maxSeconds: 3600 },
    ...overrides,
  });
}

describe("DynamoTemplateStore", () => {
  let table: TestTable;
  let store: DynamoTemplateStore;
  const now = new Date("2026-03-01T12:00:00.000Z");

  beforeAll(async () => {
    table = await createTestTable();
    store = new DynamoTemplateStore({ client: table.doc, tableName: table.tableName, now: () => now });
  });

  it("round-trips a template and records when it was written", async () => {
    const reportsRead = template("reports-read");

    await store.put(reportsRead);

    await expect(store.get("reports-read")).resolves.toEqual(reportsRead);
    const raw = await table.doc.send(
      new GetCommand({ TableName: table.tableName, Key: templateKey("reports-read") }),
    );
    expect(raw.Item).toMatchObject({
      type: "template",
      updatedAt: "2026-03-01T12:00:00.000Z",
      body: JSON.stringify(reportsRead),
    });
  });

  it("returns undefined for an unknown template", async () => {
    await expect(store.get("no-such-template")).resolves.toBeUndefined();
  });

  it("replaces a template on put", async () => {
    await store.put(template("replace-me", { description: "v1" }));
    await store.put(template("replace-me", { description: "v2" }));

    await expect(store.get("replace-me")).resolves.toMatchObject({ description: "v2" });
  });

  it("lists every template across query pages, and nothing else", async () => {
    const own = await createTestTable();
    const paged = new DynamoTemplateStore({ client: own.doc, tableName: own.tableName, pageSize: 2 });
    const names = ["a-one", "b-two", "c-three", "d-four", "e-five"];
    for (const name of names) await paged.put(template(name));
    await new DynamoTaskRepository({ client: own.doc, tableName: own.tableName }).create(makeTask());

    const listed = await paged.list();

    expect(listed.map((t) => t.name)).toEqual(names);
    expect(listed[0]).toEqual(template("a-one"));
  });

  it("reports a stored body that is no longer valid as internal, not as the caller's fault", async () => {
    await table.doc.send(
      new PutCommand({
        TableName: table.tableName,
        Item: { ...templateKey("corrupt"), type: "template", name: "corrupt", body: '{"name":"corrupt"}' },
      }),
    );

    await expect(store.get("corrupt")).rejects.toBeInstanceOf(InternalError);
  });

  it("reports DynamoDB failures as upstream_unavailable", async () => {
    const broken = new DynamoTemplateStore({ client: table.doc, tableName: "jitv-no-such-table" });

    await expect(broken.get("x")).rejects.toBeInstanceOf(UpstreamUnavailableError);
    await expect(broken.put(template("x"))).rejects.toBeInstanceOf(UpstreamUnavailableError);
    await expect(broken.list()).rejects.toBeInstanceOf(UpstreamUnavailableError);
  });
});
