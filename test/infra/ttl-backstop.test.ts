import { Match, Template } from "aws-cdk-lib/assertions";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { describe, expect, it } from "vitest";
import { SecretRotation } from "../../infra/constructs/secret-rotation.js";
import { TargetRoles } from "../../infra/constructs/target-roles.js";
import { TasksTable } from "../../infra/constructs/tasks-table.js";
import { TtlBackstop } from "../../infra/constructs/ttl-backstop.js";
import { TTL_STREAM_FILTER_PATTERN } from "../../lib/app/ttl-backstop.js";
import {
  allIdentityStatements,
  constructTestStack,
  getAtt,
  logicalId,
  nagFindings,
  type Resources,
} from "./support.js";

describe("TtlBackstop", () => {
  const stack = constructTestStack();
  const table = new TasksTable(stack, "Tasks");
  const rotation = new SecretRotation(stack, "Rotation", {
    entry: new URL("../../functions/rotate-secret.ts", import.meta.url).pathname,
    logRetention: RetentionDays.ONE_MONTH,
  });
  const backstop = new TtlBackstop(stack, "Backstop", {
    entry: new URL("../../functions/ttl-stream.ts", import.meta.url).pathname,
    sweepEntry: new URL("../../functions/backstop-sweep.ts", import.meta.url).pathname,
    table,
    targetRoles: new TargetRoles(stack, { rolePath: "/jitv/" }),
    rotation,
    logRetention: RetentionDays.ONE_MONTH,
  });
  const template = Template.fromStack(stack);
  const resources = template.toJSON().Resources as Resources;
  const id = (construct: { node: { defaultChild?: unknown } }) => logicalId(stack, construct);

  it("reads the table stream filtered to TTL lease deletions, with partial failures, bisect, retries and the DLQ", () => {
    template.resourceCountIs("AWS::Lambda::EventSourceMapping", 1);
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      FunctionName: { Ref: id(backstop.function.function) },
      EventSourceArn: getAtt(id(table.table), "StreamArn"),
      StartingPosition: "TRIM_HORIZON",
      FilterCriteria: { Filters: [{ Pattern: JSON.stringify(TTL_STREAM_FILTER_PATTERN) }] },
      FunctionResponseTypes: ["ReportBatchItemFailures"],
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: 10,
      DestinationConfig: { OnFailure: { Destination: getAtt(id(backstop.deadLetterQueue)) } },
    });
    template.hasResourceProperties("AWS::SQS::Queue", {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
  });

  it("may revoke on tagged target roles and rotate tagged secrets, as the lifecycle would", () => {
    const sids = allIdentityStatements(resources)
      .filter(({ resource }) =>
        JSON.stringify(resources[resource]?.Properties.Roles).includes(id(backstop.function.role)),
      )
      .map(({ statement }) => statement.Sid)
      .filter((sid) => sid !== undefined)
      .sort();
    expect(sids).toEqual([
      "InvokeRotationFunctions",
      "RevocationOverflowPolicies",
      "RevocationPolicyOnTargetRoles",
      "RotateTaggedSecrets",
      "TableItems",
      "TableKey",
      "WriteOwnLogs",
    ]);
    expect(nagFindings(stack)).toEqual([]);
  });

  it("runs the backstop sweep every 5 minutes, each run shorter than that, with the backstop's permissions and the status index", () => {
    template.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(5 minutes)",
      State: "ENABLED",
      Targets: [Match.objectLike({ Arn: getAtt(id(backstop.sweepFunction.function)) })],
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Timeout: 240,
      Description: Match.stringLikeRegexp("^Backstop sweep"),
    });
    const sweepSids = allIdentityStatements(resources)
      .filter(({ resource }) =>
        JSON.stringify(resources[resource]?.Properties.Roles).includes(id(backstop.sweepFunction.role)),
      )
      .map(({ statement }) => statement.Sid);
    expect(sweepSids).toEqual(expect.arrayContaining(["TableItems", "TableIndexes", "RotateTaggedSecrets"]));
  });
});
