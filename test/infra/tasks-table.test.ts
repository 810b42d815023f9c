import { Match, Template } from "aws-cdk-lib/assertions";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { describe, expect, it } from "vitest";
import { JitvFunction } from "../../infra/constructs/jitv-function.js";
import { TasksTable } from "../../infra/constructs/tasks-table.js";
import { TTL_ATTRIBUTE, tableDefinition } from "../../lib/store/table.js";
import {
  constructTestStack,
  getAtt,
  logicalId,
  nagFindings,
  type Resources,
  type Statement,
} from "./support.js";

describe("TasksTable", () => {
  const stack = constructTestStack();
  const tasks = new TasksTable(stack, "Tasks");
  const reader = new JitvFunction(stack, "Reader", {
    entry: new URL("../../functions/close-task.ts", import.meta.url).pathname,
    description: "reads",
    logRetention: RetentionDays.ONE_MONTH,
  });
  tasks.grantItems(reader, ["GetItem", "Query"], { indexes: true });
  const template = Template.fromStack(stack);
  const resources = template.toJSON().Resources as Resources;
  const id = (construct: { node: { defaultChild?: unknown } }) => logicalId(stack, construct);

  it("has the keys and indexes of lib/store/table.ts, a TTL, a stream, and is retained", () => {
    const definition = tableDefinition("x");
    template.hasResource("AWS::DynamoDB::Table", {
      DeletionPolicy: "Retain",
      Properties: Match.objectLike({
        KeySchema: definition.KeySchema,
        AttributeDefinitions: Match.arrayWith(definition.AttributeDefinitions ?? []),
        TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
        StreamSpecification: { StreamViewType: "NEW_AND_OLD_IMAGES" },
        SSESpecification: { SSEEnabled: true, SSEType: "KMS", KMSMasterKeyId: getAtt(id(tasks.key)) },
        DeletionProtectionEnabled: true,
        GlobalSecondaryIndexes: (definition.GlobalSecondaryIndexes ?? []).map((index) =>
          Match.objectLike({ IndexName: index.IndexName, KeySchema: index.KeySchema }),
        ),
      }),
    });
    template.hasResource("AWS::KMS::Key", { DeletionPolicy: "Retain" });
    expect(stack.resolve(tasks.environment)).toEqual({ JITV_TABLE_NAME: { Ref: id(tasks.table) } });
  });

  it("grants a function exactly the item actions asked for, Query on the indexes, and the key", () => {
    const policy = Object.values(resources).find(
      (r) =>
        r.Type === "AWS::IAM::Policy" &&
        JSON.stringify(r.Properties.Roles) === JSON.stringify([{ Ref: id(reader.role) }]),
    );
    const statements = policy?.Properties.PolicyDocument.Statement as Statement[];
    const table = getAtt(id(tasks.table));
    expect(statements).toEqual(
      expect.arrayContaining([
        {
          Sid: "TableItems",
          Effect: "Allow",
          Action: ["dynamodb:GetItem", "dynamodb:Query"],
          Resource: table,
        },
        {
          Sid: "TableIndexes",
          Effect: "Allow",
          Action: "dynamodb:Query",
          Resource: (tableDefinition("x").GlobalSecondaryIndexes ?? []).map((index) => ({
            "Fn::Join": ["", [table, `/index/${index.IndexName}`]],
          })),
        },
        {
          Sid: "TableKey",
          Effect: "Allow",
          Action: ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
          Resource: getAtt(id(tasks.key)),
        },
      ]),
    );
    expect(statements.filter((s) => JSON.stringify(s.Action).includes("dynamodb:"))).toHaveLength(2);
  });

  it("passes cdk-nag on its own", () => {
    expect(nagFindings(stack)).toEqual([]);
  });
});
