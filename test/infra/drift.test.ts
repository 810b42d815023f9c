import { RemovalPolicy, type Stack } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { AttributeType, Table, TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import { Key } from "aws-cdk-lib/aws-kms";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { describe, expect, it } from "vitest";
import { DriftDetector } from "../../infra/constructs/drift-detector.js";
import { DriftForwarder } from "../../infra/constructs/drift-forwarder.js";
import { type EventPattern, matchesEventPattern } from "../../lib/drift/event-pattern.js";
import { cloudTrailRecord } from "../fixtures/cloudtrail/records.js";
import {
  actionsOf,
  allIdentityStatements,
  constructTestStack,
  nagFindings,
  type Resources,
} from "./support.js";

// The drift constructs in minimal stacks: what the detector may do, what its rule delivers (the
// synthesized pattern run against real CloudTrail records), and what a target account forwards.

const VENDING = "123456789012";
const TARGET = "210987654321";
const STATE_MACHINE = `arn:aws:states:eu-west-1:${VENDING}:stateMachine:jitv-task-lifecycle`;

function detectorStack(): Stack {
  const stack = constructTestStack({ account: VENDING, region: "eu-west-1" });
  const tableKey = new Key(stack, "TableKey", {
    enableKeyRotation: true,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const table = new Table(stack, "Table", {
    partitionKey: { name: "pk", type: AttributeType.STRING },
    sortKey: { name: "sk", type: AttributeType.STRING },
    encryption: TableEncryption.CUSTOMER_MANAGED,
    encryptionKey: tableKey,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
  });
  new DriftDetector(stack, "Drift", {
    table,
    tableKey,
    stateMachineArn: STATE_MACHINE,
    accounts: [VENDING, TARGET],
    logRetention: RetentionDays.ONE_MONTH,
  });
  return stack;
}

/** Resolves the intrinsics CDK puts in an ARN prefix (`Fn::Join` with the partition) as in `aws`. */
function resolve(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolve);
  if (typeof value !== "object" || value === null) return value;
  const object = value as Record<string, unknown>;
  if (object.Ref === "AWS::Partition") return "aws";
  const join = object["Fn::Join"] as [string, unknown[]] | undefined;
  if (join) return join[1].map(resolve).join(join[0]);
  return Object.fromEntries(Object.entries(object).map(([k, v]) => [k, resolve(v)]));
}

function onlyRule(template: Template): { pattern: EventPattern; properties: Record<string, unknown> } {
  const rules = Object.values(template.findResources("AWS::Events::Rule"));
  expect(rules).toHaveLength(1);
  const properties = rules[0]?.Properties as Record<string, unknown>;
  return { pattern: resolve(properties.EventPattern) as EventPattern, properties };
}

describe("DriftDetector", () => {
  const stack = detectorStack();
  const template = Template.fromStack(stack);

  it("runs functions/drift.ts with the table's name", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      Description: Match.stringLikeRegexp("^jitv drift"),
      Environment: {
        Variables: Match.objectLike({ JITV_TABLE_NAME: { Ref: Match.stringLikeRegexp("^Table") } }),
      },
    });
  });

  it("may use the table and its key, answer lifecycle tokens and put drift events; nothing else", () => {
    const statements = allIdentityStatements(template.toJSON().Resources as Resources).map(
      (s) => s.statement,
    );
    // What every JitvFunction has (its own logs, tracing) is the shared construct's business.
    const own = statements.filter(
      (s) => s.Sid !== "WriteOwnLogs" && !actionsOf(s).every((action) => action.startsWith("xray:")),
    );
    expect(own.map((s) => [s.Sid, s.Action])).toEqual([
      [
        "TableItems",
        [
          "dynamodb:DeleteItem",
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:Query",
          "dynamodb:UpdateItem",
        ],
      ],
      ["TableKey", ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]],
      ["AnswerLifecycleTaskTokens", "states:SendTaskSuccess"],
      ["NotifyDrift", "events:PutEvents"],
    ]);
    const byId = Object.fromEntries(statements.map((s) => [s.Sid, resolve(s.Resource)]));
    expect(byId.AnswerLifecycleTaskTokens).toBe(STATE_MACHINE);
    expect(byId.NotifyDrift).toBe(`arn:aws:events:eu-west-1:${VENDING}:event-bus/default`);
    expect(statements.some((s) => JSON.stringify(s.Action).includes("iam:"))).toBe(false);
  });

  it("feeds the function from a rule on the default bus, retried for two hours", () => {
    const { properties } = onlyRule(template);
    expect(properties.EventBusName).toBe("default");
    expect(properties.Targets).toEqual([
      expect.objectContaining({
        Arn: { "Fn::GetAtt": [expect.stringMatching(/^DriftFunction/), "Arn"] },
        RetryPolicy: { MaximumEventAgeInSeconds: 7200, MaximumRetryAttempts: 8 },
      }),
    ]);
    template.resourceCountIs("AWS::Lambda::Permission", 1);
  });

  it("delivers jitv sessions' records of every watched account, and nothing else", () => {
    const { pattern } = onlyRule(template);
    const envelope = (record: unknown) => ({
      ...cloudTrailRecord("eventbridge-s3-get-object"),
      detail: record,
    });
    expect(matchesEventPattern(pattern, cloudTrailRecord("eventbridge-s3-get-object"))).toBe(true);
    const inTarget = { roleArn: `arn:aws:iam::${TARGET}:role/jitv/reports-reader` };
    expect(
      matchesEventPattern(pattern, envelope(cloudTrailRecord("s3-put-object-access-denied", inTarget))),
    ).toBe(true);
    expect(
      matchesEventPattern(pattern, envelope(cloudTrailRecord("ec2-describe-instances-unauthorized"))),
    ).toBe(true);

    expect(matchesEventPattern(pattern, envelope(cloudTrailRecord("iam-user-get-object")))).toBe(false);
    for (const roleArn of [
      `arn:aws:iam::${TARGET}:role/reports-reader`,
      "arn:aws:iam::999999999999:role/jitv/reports-reader",
      `arn:aws:iam::${TARGET}:role/jitv/jitv-revoker`,
    ]) {
      expect(
        matchesEventPattern(pattern, envelope(cloudTrailRecord("s3-get-object", { roleArn }))),
        roleArn,
      ).toBe(false);
    }
    const notCloudTrail = {
      ...cloudTrailRecord("eventbridge-s3-get-object"),
      "detail-type": "Object Created",
    };
    expect(matchesEventPattern(pattern, notCloudTrail)).toBe(false);
  });

  it("lets only the other watched accounts put CloudTrail events on the bus", () => {
    const policies = Object.values(template.findResources("AWS::Events::EventBusPolicy"));
    expect(policies.map((p) => resolve(p.Properties))).toEqual([
      {
        EventBusName: "default",
        StatementId: `jitv-drift-${TARGET}`,
        Statement: {
          Effect: "Allow",
          Principal: { AWS: `arn:aws:iam::${TARGET}:root` },
          Action: "events:PutEvents",
          Resource: `arn:aws:events:eu-west-1:${VENDING}:event-bus/default`,
          Condition: { StringEquals: { "events:detail-type": "AWS API Call via CloudTrail" } },
        },
      },
    ]);
  });

  it("passes cdk-nag's AWS Solutions checks", () => {
    expect(nagFindings(stack)).toEqual([]);
  });
});

describe("DriftForwarder", () => {
  const stack = constructTestStack({ account: TARGET, region: "eu-west-1" });
  new DriftForwarder(stack, "DriftForwarder", { vendingAccount: VENDING });
  const template = Template.fromStack(stack);
  const vendingBus = `arn:aws:events:eu-west-1:${VENDING}:event-bus/default`;

  it("forwards this account's jitv sessions' records to the vending account's bus with its own role", () => {
    const { pattern, properties } = onlyRule(template);
    expect(properties.EventBusName).toBeUndefined();
    expect(resolve(properties.Targets)).toEqual([
      expect.objectContaining({ Arn: vendingBus, RoleArn: expect.anything() }),
    ]);
    const inTarget = { roleArn: `arn:aws:iam::${TARGET}:role/jitv/reports-reader` };
    expect(matchesEventPattern(pattern, cloudTrailRecord("eventbridge-s3-get-object", inTarget))).toBe(true);
    // The vending account's own sessions are its own rule's business, not this account's.
    expect(matchesEventPattern(pattern, cloudTrailRecord("eventbridge-s3-get-object"))).toBe(false);
  });

  it("gives the forwarding role events:PutEvents on that one bus, trusted by EventBridge only", () => {
    template.hasResourceProperties("AWS::IAM::Role", {
      AssumeRolePolicyDocument: {
        Statement: [
          { Action: "sts:AssumeRole", Effect: "Allow", Principal: { Service: "events.amazonaws.com" } },
        ],
      },
    });
    const statements = allIdentityStatements(template.toJSON().Resources as Resources).map(
      (s) => s.statement,
    );
    expect(statements.map((s) => resolve(s))).toEqual([
      { Effect: "Allow", Action: "events:PutEvents", Resource: vendingBus },
    ]);
  });

  it("passes cdk-nag's AWS Solutions checks", () => {
    expect(nagFindings(stack)).toEqual([]);
  });
});
