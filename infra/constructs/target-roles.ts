import { Stack, Tags } from "aws-cdk-lib";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import { NagSuppressions } from "cdk-nag";
import type { IConstruct } from "constructs";
import { ENV } from "../../lib/config.js";
import { REVOKER_CALLER_TAG, REVOKER_ROLE_NAME, REVOKER_ROLE_PATH } from "../../lib/domain/accounts.js";
import {
  OVERFLOW_POLICY_ACTIONS,
  REVOCATION_ROLE_ACTIONS,
} from "../../lib/revocation/iam-role-policy-writer.js";
import { OVERFLOW_POLICY_PATH } from "../../lib/revocation/policy.js";
import { JITV_TARGET_TAG } from "./jit-target-role.js";
import type { JitvFunction } from "./jitv-function.js";

/**
 * The condition on every vend (`sts:*`) and revocation (`iam:*Role*`) statement: the role must
 * carry the tag `jitv:target=true` (JitTargetRole sets it; hand-made roles need it), so a role
 * that merely sits under the jitv path is neither assumable nor writable. Each of those actions
 * accepts `aws:ResourceTag` on a role; IAM's managed-policy actions are scoped by their path
 * (`/jitv/revocation/`) instead, since the overflow policies carry no tag.
 */
export const TARGET_ROLE_CONDITION = {
  StringEquals: { [`aws:ResourceTag/${JITV_TARGET_TAG.key}`]: JITV_TARGET_TAG.value },
} as const;

// How cdk-nag renders an ARN prefix and account: tokens when the environment is unknown,
// literals once CDK knows the partition (and, at deploy time, the account).
export const ARN_PREFIX = "arn:(?:<AWS::Partition>|aws[a-z-]*)";
export const ACCOUNT = "(?:<AWS::AccountId>|\\d{12})";
export const REGION = "(?:<AWS::Region>|[a-z0-9-]+)";
export const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

export interface TargetRolesProps {
  /** IAM path of the roles agents may assume. */
  readonly rolePath: string;
  /** The only roles jitv may vend and revoke on. @default - every role under `rolePath` */
  readonly allowedRoleArns?: readonly string[];
  /** Other accounts jitv may vend into (each with `TargetAccountStack`'s revoker role). */
  readonly targetAccounts?: readonly string[];
}

/**
 * The roles agents may assume, in this account and the target accounts, and what jitv's
 * functions may do on them: the vend function assumes them, the revoking functions write the
 * revocation policy on them (in another account through its revoker role). Not a construct: it
 * only adds statements to the roles of the functions it is given.
 */
export class TargetRoles {
  /** ARNs (or role-path patterns) of the roles agents may assume. Never `*`. */
  readonly roleArns: readonly string[];
  /** Accounts jitv vends into: the stack's own first. */
  readonly accounts: readonly string[];
  /** The environment of a function that revokes: the home account and every target account. */
  readonly revokerEnvironment: Readonly<Record<string, string>>;
  private readonly overflowPolicyArns: string[];
  private readonly revokerRoleArns: string[];

  constructor(
    scope: IConstruct,
    private readonly props: TargetRolesProps,
  ) {
    const stack = Stack.of(scope);
    const otherAccounts = (props.targetAccounts ?? []).filter((account) => account !== stack.account);
    const iamArn = (account: string | undefined, resource: string, resourceName: string) =>
      stack.formatArn({
        service: "iam",
        region: "",
        ...(account === undefined ? {} : { account }),
        resource,
        resourceName,
      });
    const everyAccount = [undefined, ...otherAccounts];
    this.roleArns = props.allowedRoleArns?.length
      ? [...props.allowedRoleArns]
      : everyAccount.map((account) => iamArn(account, "role", `${props.rolePath.slice(1)}*`));
    this.overflowPolicyArns = everyAccount.map((account) =>
      iamArn(account, "policy", `${OVERFLOW_POLICY_PATH.slice(1)}*`),
    );
    this.revokerRoleArns = otherAccounts.map((account) =>
      iamArn(account, "role", `${REVOKER_ROLE_PATH.slice(1)}${REVOKER_ROLE_NAME}`),
    );
    this.accounts = [stack.account, ...otherAccounts];
    this.revokerEnvironment = {
      [ENV.accountId]: stack.account,
      [ENV.targetAccounts]: this.accounts.join(","),
    };
  }

  /** `fn` may assume the tagged target roles with session tags and a source identity. */
  grantVend(fn: JitvFunction): void {
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "VendOnTargetRoles",
        actions: ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
        resources: [...this.roleArns],
        conditions: TARGET_ROLE_CONDITION,
      }),
    );
    this.acknowledge(fn);
  }

  /**
   * `fn` may write the revocation policy on the tagged target roles and new versions of their
   * overflow policies; in other accounts it assumes their revoker roles, which trust only roles
   * tagged `jitv:revoker-caller`.
   */
  grantRevoke(fn: JitvFunction): void {
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "RevocationPolicyOnTargetRoles",
        // ListRolePolicies + GetRolePolicy measure what the role's inline quota has free.
        // ListAttachedRolePolicies finds the role's revocation overflow policies.
        actions: [...REVOCATION_ROLE_ACTIONS],
        resources: [...this.roleArns],
        conditions: TARGET_ROLE_CONDITION,
      }),
    );
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "RevocationOverflowPolicies",
        actions: [...OVERFLOW_POLICY_ACTIONS],
        resources: this.overflowPolicyArns,
      }),
    );
    this.acknowledge(fn);
    if (this.revokerRoleArns.length === 0) return;
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "AssumeTargetAccountRevokers",
        actions: ["sts:AssumeRole"],
        resources: this.revokerRoleArns,
      }),
    );
    Tags.of(fn.role).add(REVOKER_CALLER_TAG, "true");
  }

  // Target roles are matched by pattern by design (teams create them after this stack).
  private acknowledge(fn: JitvFunction): void {
    const { rolePath, allowedRoleArns } = this.props;
    NagSuppressions.addResourceSuppressions(
      fn.role,
      [
        {
          id: "AwsSolutions-IAM5",
          reason:
            `Target roles are the roles teams create under the jitv path ${rolePath} (JitTargetRole), after ` +
            "this stack, and only those tagged jitv:target=true; the path is the boundary (never role/*), and context allowedRoleArns pins exact ARNs instead. " +
            `Their revocation overflow policies live under ${OVERFLOW_POLICY_PATH} (created with each role), and only new versions are written.`,
          appliesTo: [
            ...(allowedRoleArns?.length
              ? []
              : [{ regex: `/^Resource::${ARN_PREFIX}:iam::${ACCOUNT}:role${escapeRegex(rolePath)}\\*$/` }]),
            {
              regex: `/^Resource::${ARN_PREFIX}:iam::${ACCOUNT}:policy${escapeRegex(OVERFLOW_POLICY_PATH)}\\*$/`,
            },
          ],
        },
      ],
      true,
    );
  }
}
