import { Template } from "aws-cdk-lib/assertions";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { describe, expect, it } from "vitest";
import { JitvFunction } from "../../infra/constructs/jitv-function.js";
import { SecretRotation } from "../../infra/constructs/secret-rotation.js";
import {
  allIdentityStatements,
  constructTestStack,
  getAtt,
  logicalId,
  nagFindings,
  type Resources,
} from "./support.js";

const TEAM_ROTATION = "arn:aws:lambda:eu-west-1:111122223333:function:team-rotation";
const taggedSecrets = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:*";
const rotateOnEnd = { StringEquals: { "aws:ResourceTag/jitv:rotate-on-end": "true" } };

describe("SecretRotation", () => {
  const stack = constructTestStack({ account: "111122223333", region: "eu-west-1" });
  const rotation = new SecretRotation(stack, "Rotation", {
    entry: new URL("../../functions/rotate-secret.ts", import.meta.url).pathname,
    logRetention: RetentionDays.ONE_MONTH,
    rotationFunctionArns: [TEAM_ROTATION],
  });
  const caller = new JitvFunction(stack, "Caller", {
    entry: new URL("../../functions/rotate-task-secrets.ts", import.meta.url).pathname,
    description: "starts rotations",
    logRetention: RetentionDays.ONE_MONTH,
  });
  rotation.grantRotateTagged(caller);
  const template = Template.fromStack(stack);
  const resources = template.toJSON().Resources as Resources;
  const statementsOf = (fn: JitvFunction) =>
    allIdentityStatements(resources)
      .filter(({ resource }) =>
        JSON.stringify(resources[resource]?.Properties.Roles).includes(logicalId(stack, fn.role)),
      )
      .map(({ statement }) => statement);

  it("lets a caller start rotations of tagged secrets and invoke jitv's and the teams' rotation functions", () => {
    expect(statementsOf(caller)).toEqual(
      expect.arrayContaining([
        {
          Sid: "RotateTaggedSecrets",
          Effect: "Allow",
          Action: "secretsmanager:RotateSecret",
          Resource: taggedSecrets,
          Condition: rotateOnEnd,
        },
        {
          Sid: "InvokeRotationFunctions",
          Effect: "Allow",
          Action: "lambda:InvokeFunction",
          Resource: [TEAM_ROTATION, getAtt(logicalId(stack, rotation.rotationFunction.function))],
        },
      ]),
    );
  });

  it("rotates only tagged secrets, and only Secrets Manager of this account may invoke it", () => {
    expect(statementsOf(rotation.rotationFunction)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          Sid: "RotateTaggedSecretValues",
          Resource: taggedSecrets,
          Condition: rotateOnEnd,
        }),
        expect.objectContaining({ Sid: "GenerateSecretValues", Action: "secretsmanager:GetRandomPassword" }),
      ]),
    );
    template.hasResourceProperties("AWS::Lambda::Permission", {
      Action: "lambda:InvokeFunction",
      Principal: "secretsmanager.amazonaws.com",
      SourceAccount: { Ref: "AWS::AccountId" },
    });
    expect(nagFindings(stack)).toEqual([]);
  });
});
