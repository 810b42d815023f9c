import { Duration, Tags, Token } from "aws-cdk-lib";
import {
  ArnPrincipal,
  type IManagedPolicy,
  ManagedPolicy,
  PolicyDocument,
  PolicyStatement,
  Role,
} from "aws-cdk-lib/aws-iam";
import { Construct } from "constructs";
import { SESSION_TAG_KEYS } from "../../lib/domain/sts-request.js";
import {
  DEFAULT_OVERFLOW_POLICIES,
  EMPTY_OVERFLOW_DOCUMENT,
  OVERFLOW_POLICY_PATH,
} from "../../lib/revocation/policy.js";

/** IAM's limit on managed policies attached to one role. */
const MANAGED_POLICIES_PER_ROLE = 10;

/**
 * The tag that marks a role as a jitv target. The vending stack may assume, and revoke on, only
 * roles that carry it (`aws:ResourceTag/jitv:target` conditions, infra/constructs/target-roles.ts),
 * so a hand-made target role needs it too; it also serves discovery (`aws iam list-roles`, Config).
 */
export const JITV_TARGET_TAG = { key: "jitv:target", value: "true" } as const;

/** Session tags jitv always sets (CONTRACT.md section 5); a role that agents assume requires them. */
export const REQUIRED_SESSION_TAGS = ["jitv:task", "jitv:agent"] as const;

/** The longest session of a chained role (the vend function assumes it from its own role session). */
const ROLE_CHAINING_LIMIT = Duration.hours(1);

export interface JitTargetRoleProps {
  /**
   * ARN of the vend function's role: the `VendFunctionRoleArn` output of the vending stack.
   * It is the only principal the role trusts.
   */
  readonly vendFunctionRoleArn: string;
  /**
   * IAM path of the role. Must equal the vending stack's `rolePath` context, or jitv cannot
   * assume the role nor revoke its sessions.
   * @default "/jitv/"
   */
  readonly path?: string;
  /**
   * Name of the role.
   * @default - a name CloudFormation generates from the stack and construct id
   */
  readonly roleName?: string;
  /**
   * What the role is for; shown to security reviewers in the IAM console.
   * @default - none
   */
  readonly description?: string;
  /**
   * A permissions boundary: caps what the role can ever do, including through the inline
   * policy jitv writes on it to revoke sessions. Recommended where the vending stack's
   * revocation function should not be able to widen the role.
   * @default - no boundary
   */
  readonly permissionsBoundary?: IManagedPolicy;
  /**
   * Managed policies with what agents may do; each task's session policy narrows it further.
   * @default - none (add statements with `role.addToPolicy`)
   */
  readonly managedPolicies?: readonly IManagedPolicy[];
  /**
   * Inline policies with what agents may do.
   * @default - none
   */
  readonly inlinePolicies?: Readonly<Record<string, PolicyDocument>>;
  /**
   * Customer-managed policies jitv's revocation list overflows into once the role's inline policy
   * is full (each holds about 180 ended task ids). Together with `managedPolicies` at most 10.
   * @default 8
   */
  readonly revocationOverflowPolicies?: number;
}

/**
 * A role that jitv may vend credentials for, in a team's own stack: under the jitv role path,
 * trusting only the vend function's role, only for `sts:AssumeRole` together with
 * `sts:TagSession` and `sts:SetSourceIdentity`, and only when the request carries the
 * `jitv:task` and `jitv:agent` session tags (so every session can be revoked by task and
 * traced in CloudTrail). Sessions last at most one hour (`MaxSessionDuration` 3600, which is
 * both IAM's minimum and the role chaining limit). Tagged `jitv:target=true`.
 *
 * @example
 * const target = new JitTargetRole(this, "ReportsReader", {
 *   vendFunctionRoleArn: "arn:aws:iam::123456789012:role/Jitv-prod-ApiRole1234-ABCD",
 *   description: "Read tenant reports",
 * });
 * bucket.grantRead(target.role, "reports/*");
 */
export class JitTargetRole extends Construct {
  /** The role; grant it what agents may do. */
  readonly role: Role;
  /** The ARN to put in a jitv template's `roleArn`. */
  readonly roleArn: string;
  /** The revocation overflow policies attached to the role (jitv writes them). */
  readonly revocationOverflowPolicies: readonly ManagedPolicy[];

  constructor(scope: Construct, id: string, props: JitTargetRoleProps) {
    super(scope, id);
    const path = props.path ?? "/jitv/";
    if (!Token.isUnresolved(path) && !/^\/(?:[\w+=,.@-]+\/)+$/.test(path)) {
      throw new Error(`JitTargetRole ${id}: path must look like "/jitv/" (below the root), got "${path}"`);
    }

    this.role = new Role(this, "Role", {
      assumedBy: new VendFunctionPrincipal(props.vendFunctionRoleArn),
      path,
      // IAM's minimum, and the most a chained session can last anyway; each task's session
      // length is set by jitv per request (DurationSeconds), never above this.
      maxSessionDuration: ROLE_CHAINING_LIMIT,
      ...(props.roleName === undefined ? {} : { roleName: props.roleName }),
      ...(props.description === undefined ? {} : { description: props.description }),
      ...(props.permissionsBoundary === undefined ? {} : { permissionsBoundary: props.permissionsBoundary }),
      ...(props.managedPolicies === undefined ? {} : { managedPolicies: [...props.managedPolicies] }),
      ...(props.inlinePolicies === undefined ? {} : { inlinePolicies: { ...props.inlinePolicies } }),
    });
    Tags.of(this.role).add(JITV_TARGET_TAG.key, JITV_TARGET_TAG.value);
    this.roleArn = this.role.roleArn;

    const overflow = props.revocationOverflowPolicies ?? DEFAULT_OVERFLOW_POLICIES;
    const own = props.managedPolicies?.length ?? 0;
    if (!Number.isInteger(overflow) || overflow < 0 || own + overflow > MANAGED_POLICIES_PER_ROLE) {
      throw new Error(
        `JitTargetRole ${id}: managedPolicies (${own}) plus revocationOverflowPolicies (${overflow}) exceed IAM's ${MANAGED_POLICIES_PER_ROLE} managed policies per role`,
      );
    }
    // Empty to start with (a condition no session matches); jitv writes new versions as tasks end.
    const empty = PolicyDocument.fromJson(JSON.parse(EMPTY_OVERFLOW_DOCUMENT));
    this.revocationOverflowPolicies = Array.from(
      { length: overflow },
      (_, i) =>
        new ManagedPolicy(this, `RevocationOverflow${i + 1}`, {
          path: OVERFLOW_POLICY_PATH,
          description: `jitv revocation list overflow ${i + 1} of ${overflow} (written by jitv; do not edit)`,
          document: empty,
          roles: [this.role],
        }),
    );
  }
}

/**
 * The vend function's role as the trusted principal: one trust statement with the three STS
 * actions jitv uses, each allowed only when both required session tags are present.
 */
class VendFunctionPrincipal extends ArnPrincipal {
  override addToAssumeRolePolicy(document: PolicyDocument): void {
    document.addStatements(
      new PolicyStatement({
        sid: "JitvVendFunction",
        actions: ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
        principals: [new ArnPrincipal(this.arn)],
        conditions: {
          // Both tags and a source identity are present: every session is revocable and traced.
          Null: {
            ...Object.fromEntries(REQUIRED_SESSION_TAGS.map((tag) => [`aws:RequestTag/${tag}`, "false"])),
            "sts:SourceIdentity": "false",
          },
          // The task tag names a jitv task; no session tag but jitv's own can be set.
          StringLike: { "aws:RequestTag/jitv:task": "tsk_*" },
          "ForAllValues:StringEquals": { "aws:TagKeys": Object.values(SESSION_TAG_KEYS) },
        },
      }),
    );
  }
}
