import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { actionsOf, allIdentityStatements, buildTestApp, logicalId, type Resources } from "./support.js";

function nagFindings(stack: Parameters<typeof Annotations.fromStack>[0]): string[] {
  const annotations = Annotations.fromStack(stack);
  return [
    ...annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*")),
    ...annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*")),
  ].map((f) => `${f.id}: ${String(f.entry.data).slice(0, 100)}`);
}

describe("VendingStack with every option, deployed to a known account and region", () => {
  const WAF =
    "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/jitv/0123abcd-0000-1111-2222-333344445555";
  const { stack } = buildTestApp({
    context: {
      stage: "prod",
      rolePath: "/agents/jitv/",
      alarmEmail: "oncall@example.com",
      apiRateLimit: "200",
      apiBurstLimit: "400",
      vendRateLimit: "20",
      vendBurstLimit: "30",
      wafAclArn: WAF,
      logRetentionDays: "90",
      lifecycleConcurrency: "0",
    },
    env: { account: "123456789012", region: "eu-west-1" },
  });
  const template = Template.fromStack(stack);
  const resources = template.toJSON().Resources as Resources;

  it("is named after the stage and still passes cdk-nag with literal account and region ARNs", () => {
    expect(stack.stackName).toBe("Jitv-prod");
    expect(nagFindings(stack)).toEqual([]);
  });

  it("limits STS and the revocation policy to the configured role path", () => {
    const targets = allIdentityStatements(resources).filter(({ statement }) =>
      actionsOf(statement).some((a) => a.startsWith("sts:") || a.startsWith("iam:")),
    );
    // Vend (API), revoke (Revoke state, TTL backstop, backstop sweep), and the three revokers'
    // overflow policies.
    expect(targets).toHaveLength(7);
    for (const { statement } of targets) {
      expect(statement.Resource).toEqual(
        statement.Sid === "RevocationOverflowPolicies"
          ? "arn:aws:iam::123456789012:policy/jitv/revocation/*"
          : "arn:aws:iam::123456789012:role/agents/jitv/*",
      );
    }
  });

  it("associates the WAF web ACL with the API stage", () => {
    template.hasResourceProperties("AWS::WAFv2::WebACLAssociation", {
      WebACLArn: WAF,
      ResourceArn: Match.objectLike({ "Fn::Join": Match.anyValue() }),
    });
  });

  it("subscribes the alarm e-mail, applies the limits and the retention, reserves no concurrency", () => {
    template.hasResourceProperties("AWS::SNS::Subscription", {
      Protocol: "email",
      Endpoint: "oncall@example.com",
    });
    template.hasResourceProperties("AWS::ApiGateway::Stage", {
      StageName: "prod",
      MethodSettings: [
        Match.objectLike({ ResourcePath: "/*", ThrottlingRateLimit: 200, ThrottlingBurstLimit: 400 }),
        Match.objectLike({ ResourcePath: "/~1v1~1tasks", ThrottlingRateLimit: 20, ThrottlingBurstLimit: 30 }),
      ],
    });
    template.allResourcesProperties("AWS::Logs::LogGroup", { RetentionInDays: 90 });
    for (const [, fn] of Object.entries(resources).filter(([, r]) => r.Type === "AWS::Lambda::Function")) {
      expect(fn.Properties.ReservedConcurrentExecutions).toBeUndefined();
    }
    expect(logicalId(stack, stack.table)).toMatch(/^Table/);
  });
});

describe("VendingStack with allowedRoleArns", () => {
  const ROLES = [
    "arn:aws:iam::123456789012:role/jitv/reports-reader",
    "arn:aws:iam::123456789012:role/ops/db",
  ];
  const { stack } = buildTestApp({ context: { allowedRoleArns: ROLES.join(", ") } });
  const resources = Template.fromStack(stack).toJSON().Resources as Resources;

  it("vends and revokes on exactly the listed roles, with no wildcard left to acknowledge", () => {
    const targets = allIdentityStatements(resources).filter(({ statement }) =>
      actionsOf(statement).some((a) => a.startsWith("sts:") || a.startsWith("iam:")),
    );
    expect(targets).toHaveLength(7);
    for (const { statement } of targets) {
      if (statement.Sid !== "RevocationOverflowPolicies") expect(statement.Resource).toEqual(ROLES);
    }
    expect(JSON.stringify(resources)).not.toContain("role/jitv/*");
    expect(nagFindings(stack)).toEqual([]);
  });
});
