import { App } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { buildTargetAccountApp } from "../../infra/build-app.js";
import { ConfigError } from "../../lib/domain/errors.js";
import {
  actionsOf,
  allIdentityStatements,
  buildTestApp,
  cdkJsonContext,
  logicalId,
  type Resources,
} from "./support.js";

// Cross-account revocation (CONTRACT.md section 6): the vending stack's revoking functions write
// through a revoker role in each target account, which trusts only them.

function nagFindings(stack: Parameters<typeof Annotations.fromStack>[0]): string[] {
  const annotations = Annotations.fromStack(stack);
  return [
    ...annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*")),
    ...annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*")),
  ].map((f) => `${f.id}: ${String(f.entry.data).slice(0, 100)}`);
}

const VENDING = "111122223333";
const TARGET = "210987654321";

describe("TargetAccountStack", () => {
  const app = new App({ context: { ...cdkJsonContext(), vendingAccount: VENDING } });
  const stack = buildTargetAccountApp(app, { env: { account: TARGET, region: "eu-west-1" } });
  const template = Template.fromStack(stack);

  it("creates role/jitv/jitv-revoker, trusted only by the vending account's tagged revoking functions", () => {
    template.hasResourceProperties("AWS::IAM::Role", {
      RoleName: "jitv-revoker",
      Path: "/jitv/",
      AssumeRolePolicyDocument: {
        Statement: [
          {
            Action: "sts:AssumeRole",
            Effect: "Allow",
            Principal: { AWS: `arn:aws:iam::${VENDING}:root` },
            Condition: { StringEquals: { "aws:PrincipalTag/jitv:revoker-caller": "true" } },
          },
        ],
      },
    });
  });

  it("may only read and write inline policies of this account's tagged jitv roles, never its own", () => {
    const resources = template.toJSON().Resources as Resources;
    const revoker = logicalId(stack, stack.revokerRole);
    const statements = allIdentityStatements(resources)
      .filter(({ resource }) => resource === revoker)
      .map((s) => s.statement);
    expect(statements).toEqual([
      {
        Sid: "RevocationPolicyOnJitvRoles",
        Effect: "Allow",
        Action: [
          "iam:DeleteRolePolicy",
          "iam:GetRolePolicy",
          "iam:ListAttachedRolePolicies",
          "iam:ListRolePolicies",
          "iam:PutRolePolicy",
        ],
        Resource: `arn:aws:iam::${TARGET}:role/jitv/*`,
        // Only roles tagged as jitv targets: a role that merely sits under the path is not written.
        Condition: { StringEquals: { "aws:ResourceTag/jitv:target": "true" } },
      },
      {
        Sid: "RevocationOverflowPolicies",
        Effect: "Allow",
        Action: [
          "iam:CreatePolicyVersion",
          "iam:DeletePolicyVersion",
          "iam:GetPolicy",
          "iam:GetPolicyVersion",
          "iam:ListPolicyVersions",
        ],
        Resource: `arn:aws:iam::${TARGET}:policy/jitv/revocation/*`,
      },
      {
        Sid: "NeverItself",
        Effect: "Deny",
        Action: "iam:*",
        Resource: `arn:aws:iam::${TARGET}:role/jitv/jitv-revoker`,
      },
    ]);
    // The stack's other role (the drift forwarder's) may only put events on the vending account's bus.
    const others = allIdentityStatements(resources).filter(({ resource }) => resource !== revoker);
    expect(others.flatMap(({ statement }) => actionsOf(statement))).toEqual(["events:PutEvents"]);
    expect(nagFindings(stack)).toEqual([]);
  });

  it("refuses to build without a valid vendingAccount", () => {
    for (const vendingAccount of [undefined, "12345", "111122223333,210987654321"]) {
      const bad = new App({
        context: { ...cdkJsonContext(), ...(vendingAccount ? { vendingAccount } : {}) },
      });
      expect(() => buildTargetAccountApp(bad)).toThrow(ConfigError);
    }
  });
});

describe("VendingStack with targetAccounts", () => {
  const { stack } = buildTestApp({
    context: { targetAccounts: TARGET },
    env: { account: VENDING, region: "eu-west-1" },
  });
  const template = Template.fromStack(stack);
  const resources = template.toJSON().Resources as Resources;
  const statements = allIdentityStatements(resources);

  it("vends into the jitv roles of every target account, and revokes there through its revoker role", () => {
    const vend = statements.find(({ statement }) => statement.Sid === "VendOnTargetRoles")?.statement;
    expect(vend?.Resource).toEqual([
      `arn:aws:iam::${VENDING}:role/jitv/*`,
      `arn:aws:iam::${TARGET}:role/jitv/*`,
    ]);
    const assume = statements.filter(({ statement }) => statement.Sid === "AssumeTargetAccountRevokers");
    // The Revoke state's function, the TTL backstop and its sweep (the only functions that revoke).
    expect(assume.length).toBe(3);
    for (const { statement } of assume) {
      expect(actionsOf(statement)).toEqual(["sts:AssumeRole"]);
      expect(statement.Resource).toBe(`arn:aws:iam::${TARGET}:role/jitv/jitv-revoker`);
    }
    // Those functions' roles carry the tag the revoker role's trust requires; the API's does not.
    const tagged = Object.entries(resources).filter(
      ([, r]) =>
        r.Type === "AWS::IAM::Role" &&
        (r.Properties.Tags ?? []).some(
          (t: { Key: string; Value: string }) => t.Key === "jitv:revoker-caller",
        ),
    );
    // Logical ids: `<Fn>Role<hash>` for the role, `<Fn>RoleDefaultPolicy<hash>` for its policy.
    expect(tagged.map(([id]) => id.replace(/[0-9A-F]{8}$/, "")).sort()).toEqual(
      assume.map(({ resource }) => resource.replace(/DefaultPolicy.*$/, "")).sort(),
    );
    expect(nagFindings(stack)).toEqual([]);
  });

  it("tells the API and the revoking functions the target accounts, and outputs them", () => {
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: {
        Variables: Match.objectLike({
          JITV_TARGET_ACCOUNTS: `${VENDING},${TARGET}`,
          JITV_ISSUERS_FILE: Match.anyValue(),
        }),
      },
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: {
        Variables: Match.objectLike({
          JITV_TARGET_ACCOUNTS: `${VENDING},${TARGET}`,
          JITV_ACCOUNT_ID: VENDING,
        }),
      },
    });
    template.hasOutput("TargetAccounts", { Value: `${VENDING},${TARGET}` });
  });

  it("refuses a malformed targetAccounts context", () => {
    expect(() => buildTestApp({ context: { targetAccounts: "12345" } })).toThrow(/targetAccounts/);
  });
});
