import { UpstreamUnavailableError } from "../domain/errors.js";

/**
 * Port: per-task revocation on target roles (CONTRACT.md section 6). The source of truth
 * is one entry per revoked task per role in DynamoDB; adapters project the entries of a
 * role into one inline policy (`jitv-revoked-tasks`) on that role, so sessions already
 * issued for those tasks stop working.
 */
export interface RevocationStore {
  /**
   * Records the task as revoked on its role and re-projects the role's deny policy.
   * Idempotent. Schedules the entry's pruning (a TTL prune lease) at
   * `lastCredentialExpiry + 5 minutes` (or `expiresAt + 5 minutes` when no credential was issued).
   */
  revoke(entry: RevocationEntry): Promise<void>;
  /**
   * Removes the entry once every credential of the task has expired, and re-projects.
   * Idempotent. Returns `false` (and re-arms the prune lease) when credentials still live.
   */
  prune(roleArn: string, taskId: string): Promise<boolean>;
  /** Task ids currently revoked on the role (source of truth). */
  revokedTaskIds(roleArn: string): Promise<string[]>;
}

export interface RevocationEntry {
  readonly roleArn: string;
  readonly taskId: string;
  /** RFC 3339: latest `Expiration` of any credential of the task; pruning waits for it. */
  readonly credentialsExpireAt: string;
}

/**
 * Port: the role's inline policies, as IAM has them (IAM adapter) or as the sandbox
 * keeps them (DynamoDB adapter). Documents are JSON strings.
 */
export interface RolePolicyWriter {
  get(roleArn: string, policyName: string): Promise<string | undefined>;
  /**
   * @throws RolePolicyLimitError when IAM's size quota refuses the document
   * @throws RoleNotFoundError when the role does not exist (any more)
   */
  put(roleArn: string, policyName: string, document: string): Promise<void>;
  delete(roleArn: string, policyName: string): Promise<void>;
  /**
   * Non-whitespace characters the role's inline policies leave free for `policyName`: IAM's
   * {@link INLINE_POLICY_QUOTA_CHARS} minus every *other* inline policy of the role.
   * @throws RoleNotFoundError when the role does not exist
   */
  freeInlineChars(roleArn: string, policyName: string): Promise<number>;
  /**
   * The role's revocation overflow policies (customer-managed policies under `/jitv/revocation/`
   * attached to it, created with the role by `JitTargetRole`), in slot order: the deny list
   * continues there once the inline policy is full.
   * @throws RoleNotFoundError when the role does not exist
   */
  overflowPolicies(roleArn: string): Promise<readonly string[]>;
  /** The current document of an overflow policy. */
  getOverflow(roleArn: string, policyId: string): Promise<string>;
  /**
   * Replaces the document of an overflow policy (a new default version; the oldest is dropped
   * when IAM's five are used).
   * @throws RolePolicyLimitError when the document exceeds IAM's 6,144 characters
   */
  putOverflow(roleArn: string, policyId: string, document: string): Promise<void>;
}

/** IAM's quota: non-whitespace characters of all inline policies of one role, together. */
export const INLINE_POLICY_QUOTA_CHARS = 10_240;

/** IAM refused a policy for its size (`LimitExceeded`): the caller must write a smaller one. */
export class RolePolicyLimitError extends UpstreamUnavailableError {}

/**
 * The role does not exist (`NoSuchEntity`): a deleted role's sessions have no permissions left,
 * so there is nothing to deny, and retrying cannot succeed.
 */
export class RoleNotFoundError extends UpstreamUnavailableError {}

/** Name of the inline deny policy jitv keeps on each target role. */
export const REVOCATION_POLICY_NAME = "jitv-revoked-tasks";
