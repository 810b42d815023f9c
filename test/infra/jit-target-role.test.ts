import { App, Aspects, Stack } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import { ManagedPolicy, PolicyDocument, PolicyStatement } from "aws-cdk-lib/aws-iam";
import { AwsSolutionsChecks } from "cdk-nag";
import { describe, expect, it } from "vitest";
import { JitTargetRole } from "../../infra/constructs/jit-target-role.js";

const VEND_ROLE = "arn:aws:iam::123456789012:role/Jitv-prod-ApiFunctionRole927806B9-ABCDEF";

function stackWith(build: (stack: Stack) => void): Stack {
  const stack = new Stack(new App(), "TeamStack");
  build(stack);
  return stack;
}

describe("JitTargetRole", () => {
  it("trusts only the vend function's role, for the three STS actions, when both jitv session tags are present", () => {
    const stack = stackWith((s) => new JitTargetRole(s, "Reader", { vendFunctionRoleArn: VEND_ROLE }));
    Template.fromStack(stack).hasResourceProperties("AWS::IAM::Role", {
      Path: "/jitv/",
      MaxSessionDuration: 3600,
      AssumeRolePolicyDocument: {
        Version: "2012-10-17",
        Statement: [
          {
            Sid: "JitvVendFunction",
            Effect: "Allow",
            Principal: { AWS: VEND_ROLE },
            Action: ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
            Condition: {
              Null: { "aws:RequestTag/jitv:task": "false", "aws:RequestTag/jitv:agent": "false" },
            },
          },
        ],
      },
      Tags: [{ Key: "jitv:target", Value: "true" }],
    });
  });

  it("carries 8 empty revocation overflow policies under /jitv/revocation/, within IAM's 10 managed policies", () => {
    let target: JitTargetRole | undefined;
    const stack = stackWith((s) => {
      target = new JitTargetRole(s, "Reader", { vendFunctionRoleArn: VEND_ROLE });
    });
    const template = Template.fromStack(stack);
    const overflow = template.findResources("AWS::IAM::ManagedPolicy");
    expect(Object.keys(overflow)).toHaveLength(8);
    for (const policy of Object.values(overflow)) {
      expect(policy.Properties.Path).toBe("/jitv/revocation/");
      expect(policy.Properties.Roles).toEqual([
        { Ref: stack.getLogicalId(target?.role.node.defaultChild as never) },
      ]);
      // Denies nothing until jitv writes a version: no session carries that task tag.
      expect(policy.Properties.PolicyDocument.Statement).toEqual([
        {
          Sid: "JitvRevokedTasks",
          Effect: "Deny",
          Action: "*",
          Resource: "*",
          Condition: { StringEquals: { "aws:PrincipalTag/jitv:task": "jitv-none" } },
        },
      ]);
    }
    expect(() =>
      stackWith(
        (s) =>
          new JitTargetRole(s, "Crowded", {
            vendFunctionRoleArn: VEND_ROLE,
            managedPolicies: [1, 2, 3].map((n) => ManagedPolicy.fromAwsManagedPolicyName(`Policy${n}`)),
          }),
      ),
    ).toThrow(
      "managedPolicies (3) plus revocationOverflowPolicies (8) exceed IAM's 10 managed policies per role",
    );
    const fewer = stackWith(
      (s) =>
        new JitTargetRole(s, "Fewer", {
          vendFunctionRoleArn: VEND_ROLE,
          managedPolicies: [1, 2, 3].map((n) => ManagedPolicy.fromAwsManagedPolicyName(`Policy${n}`)),
          revocationOverflowPolicies: 7,
        }),
    );
    expect(Object.keys(Template.fromStack(fewer).findResources("AWS::IAM::ManagedPolicy"))).toHaveLength(7);
  });

  it("accepts only sessions jitv would ask for: both tags, a source identity, a task id, no other tag key", () => {
    const stack = stackWith((s) => new JitTargetRole(s, "Reader", { vendFunctionRoleArn: VEND_ROLE }));
    const [role] = Object.values(Template.fromStack(stack).findResources("AWS::IAM::Role"));
    expect(role?.Properties.AssumeRolePolicyDocument.Statement[0].Condition).toEqual({
      Null: {
        "aws:RequestTag/jitv:task": "false",
        "aws:RequestTag/jitv:agent": "false",
        "sts:SourceIdentity": "false",
      },
      StringLike: { "aws:RequestTag/jitv:task": "tsk_*" },
      "ForAllValues:StringEquals": {
        "aws:TagKeys": ["jitv:task", "jitv:agent", "jitv:template", "jitv:user", "jitv:tenant"],
      },
    });
  });

  it("takes a permissions boundary, a path, a name and the team's policies", () => {
    const stack = stackWith((s) => {
      const boundary = new ManagedPolicy(s, "Boundary", {
        statements: [
          new PolicyStatement({ actions: ["s3:GetObject"], resources: ["arn:aws:s3:::reports/*"] }),
        ],
      });
      new JitTargetRole(s, "Reader", {
        vendFunctionRoleArn: VEND_ROLE,
        path: "/agents/jitv/",
        roleName: "reports-reader",
        description: "Read tenant reports",
        permissionsBoundary: boundary,
        inlinePolicies: {
          read: new PolicyDocument({
            statements: [
              new PolicyStatement({ actions: ["s3:GetObject"], resources: ["arn:aws:s3:::reports/*"] }),
            ],
          }),
        },
      });
    });
    Template.fromStack(stack).hasResourceProperties("AWS::IAM::Role", {
      RoleName: "reports-reader",
      Path: "/agents/jitv/",
      MaxSessionDuration: 3600,
      Description: "Read tenant reports",
      PermissionsBoundary: { Ref: Match.stringLikeRegexp("^Boundary") },
      Policies: [Match.objectLike({ PolicyName: "read" })],
    });
  });

  it("refuses a path at the root or without the trailing slash", () => {
    for (const path of ["/", "/jitv"]) {
      expect(() =>
        stackWith((s) => new JitTargetRole(s, "Bad", { vendFunctionRoleArn: VEND_ROLE, path })),
      ).toThrow(/path must look like "\/jitv\/"/);
    }
  });

  it("passes cdk-nag's AWS Solutions checks in a team's stack", () => {
    const stack = stackWith((s) => {
      const target = new JitTargetRole(s, "Reader", { vendFunctionRoleArn: VEND_ROLE });
      target.role.addToPolicy(
        new PolicyStatement({ actions: ["s3:GetObject"], resources: ["arn:aws:s3:::reports/q3.csv"] }),
      );
    });
    Aspects.of(stack.node.root).add(new AwsSolutionsChecks());
    const annotations = Annotations.fromStack(stack);
    expect([
      ...annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*")),
      ...annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*")),
    ]).toEqual([]);
  });
});
