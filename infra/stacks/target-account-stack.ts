import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import { AccountPrincipal, Effect, PolicyDocument, PolicyStatement, Role } from "aws-cdk-lib/aws-iam";
import { NagSuppressions } from "cdk-nag";
import type { Construct } from "constructs";
import { REVOKER_CALLER_TAG, REVOKER_ROLE_NAME, REVOKER_ROLE_PATH } from "../../lib/domain/accounts.js";
import {
  OVERFLOW_POLICY_ACTIONS,
  REVOCATION_ROLE_ACTIONS,
} from "../../lib/revocation/iam-role-policy-writer.js";
import { OVERFLOW_POLICY_PATH } from "../../lib/revocation/policy.js";
import { DEPLOY_DEFAULTS } from "../config.js";
import { DriftForwarder } from "../constructs/drift-forwarder.js";
import { TARGET_ROLE_CONDITION } from "../constructs/target-roles.js";

export interface TargetAccountStackProps extends StackProps {
  /** The account of the vending stack (its revoking functions assume the revoker role from there). */
  readonly vendingAccount: string;
  /**
   * IAM path of the roles agents may assume in this account: the vending stack's `rolePath`.
   * @default "/jitv/"
   */
  readonly rolePath?: string;
}

/**
 * The small stack a target account's owner deploys (CONTRACT.md section 6), once per account
 * jitv vends into besides its own: the **revoker role** `role/jitv/jitv-revoker`, through which
 * the vending stack's revoke, TTL-backstop and prune functions write the revocation policy on
 * this account's jitv roles.
 *
 * - Trust: only principals of the vending account that carry the `jitv:revoker-caller` role tag
 *   (the vending stack tags exactly its revoking functions' roles), so neither the vend function
 *   nor any other role of that account can use it.
 * - Permissions: reading and writing the inline policies of roles under `rolePath` in this
 *   account that carry the tag `jitv:target=true` (what revocation needs to measure the role's
 *   quota and project the deny list), new versions of their overflow policies under
 *   `/jitv/revocation/`, and explicitly never anything on itself.
 *
 * @example
 * npx cdk deploy JitvTargetAccount -c vendingAccount=111122223333   # with credentials of the target account
 */
export class TargetAccountStack extends Stack {
  readonly revokerRole: Role;

  constructor(scope: Construct, id: string, props: TargetAccountStackProps) {
    super(scope, id, props);
    const rolePath = props.rolePath ?? DEPLOY_DEFAULTS.rolePath;
    const jitvRoles = this.formatArn({
      service: "iam",
      region: "",
      resource: "role",
      resourceName: `${rolePath.slice(1)}*`,
    });
    const self = this.formatArn({
      service: "iam",
      region: "",
      resource: "role",
      resourceName: `${REVOKER_ROLE_PATH.slice(1)}${REVOKER_ROLE_NAME}`,
    });
    this.revokerRole = new Role(this, "RevokerRole", {
      roleName: REVOKER_ROLE_NAME,
      path: REVOKER_ROLE_PATH,
      description: "jitv revoker: writes the revocation deny policy on this account's jitv roles",
      assumedBy: new AccountPrincipal(props.vendingAccount).withConditions({
        StringEquals: { [`aws:PrincipalTag/${REVOKER_CALLER_TAG}`]: "true" },
      }),
      inlinePolicies: {
        RevocationPolicyOnJitvRoles: new PolicyDocument({
          statements: [
            new PolicyStatement({
              sid: "RevocationPolicyOnJitvRoles",
              actions: [...REVOCATION_ROLE_ACTIONS],
              resources: [jitvRoles],
              // Only roles tagged jitv:target=true (JitTargetRole's tag), not all of the path.
              conditions: TARGET_ROLE_CONDITION,
            }),
            new PolicyStatement({
              sid: "RevocationOverflowPolicies",
              actions: [...OVERFLOW_POLICY_ACTIONS],
              resources: [
                this.formatArn({
                  service: "iam",
                  region: "",
                  resource: "policy",
                  resourceName: `${OVERFLOW_POLICY_PATH.slice(1)}*`,
                }),
              ],
            }),
            new PolicyStatement({
              sid: "NeverItself",
              effect: Effect.DENY,
              actions: ["iam:*"],
              resources: [self],
            }),
          ],
        }),
      },
    });
    NagSuppressions.addResourceSuppressions(this.revokerRole, [
      {
        id: "AwsSolutions-IAM5",
        reason:
          "Revocation must reach every role under the jitv role path of this account (roles are created by " +
          "teams over time) and their overflow policies under /jitv/revocation/; the paths are the boundary, " +
          "never role/* or policy/*, and the revoker is denied on itself.",
        // The ARN renders with tokens or literals depending on whether the stack's env is known.
        appliesTo: [
          { regex: `/^Resource::arn:[^:]+:iam::[^:]+:role${rolePath.replaceAll("/", "\\/")}\\*$/g` },
          {
            regex: `/^Resource::arn:[^:]+:iam::[^:]+:policy${OVERFLOW_POLICY_PATH.replaceAll("/", "\\/")}\\*$/g`,
          },
        ],
      },
    ]);
    // CloudTrail records of this account's jitv sessions, to the vending account's drift detector.
    new DriftForwarder(this, "DriftForwarder", { vendingAccount: props.vendingAccount, rolePath });
    new CfnOutput(this, "RevokerRoleArn", { value: this.revokerRole.roleArn });
  }
}
