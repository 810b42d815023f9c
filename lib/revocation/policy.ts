/**
 * The revocation deny policy jitv keeps inline on each target role (CONTRACT.md section 6),
 * rendered from the role's revocation entries. Pure: no SDK, no clock.
 */

/** Session tag the deny statement keys on; STS sets it on every session jitv issues. */
const TASK_TAG_CONDITION_KEY = "aws:PrincipalTag/jitv:task";

/**
 * How many non-whitespace characters the revocation policy may use. IAM allows 10,240
 * non-whitespace characters across all inline policies of a role; the rest is left for the
 * role's own policies.
 */
export const REVOCATION_POLICY_BUDGET_CHARS = 6144;

/** What {@link renderRevocationPolicy} renders. */
export interface RevocationPolicyInput {
  /** Ids of revoked tasks whose sessions are denied. Order and duplicates do not matter. */
  readonly taskIds: readonly string[];
  /**
   * RFC 3339 cutoff of the size fallback: every session of the role issued before it is denied
   * (`aws:TokenIssueTime`), whatever its task.
   */
  readonly issuedBefore?: string;
}

/**
 * Renders the revocation policy as compact JSON: a `Deny *` statement (`JitvRevokedTasks`) on
 * `aws:PrincipalTag/jitv:task` listing the task ids sorted and without duplicates and, with
 * `issuedBefore`, a `Deny *` statement (`JitvRevokedBefore`) on `aws:TokenIssueTime`.
 *
 * @returns the JSON document, or `undefined` when there is nothing to deny (the caller deletes
 * the policy then: IAM refuses a policy without statements)
 * @example
 * renderRevocationPolicy({ taskIds: ["tsk_b", "tsk_a"] });
 * // → '{"Version":"2012-10-17","Statement":[{"Sid":"JitvRevokedTasks","Effect":"Deny","Action":"*",
 * //    "Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/jitv:task":["tsk_a","tsk_b"]}}}]}'
 */
export function renderRevocationPolicy(input: RevocationPolicyInput): string | undefined {
  const taskIds = [...new Set(input.taskIds)].sort();
  const statements: Record<string, unknown>[] = [];
  if (taskIds.length > 0) {
    statements.push({
      Sid: "JitvRevokedTasks",
      Effect: "Deny",
      Action: "*",
      Resource: "*",
      Condition: { StringEquals: { [TASK_TAG_CONDITION_KEY]: taskIds } },
    });
  }
  if (input.issuedBefore !== undefined) {
    statements.push({
      Sid: "JitvRevokedBefore",
      Effect: "Deny",
      Action: "*",
      Resource: "*",
      Condition: { DateLessThan: { "aws:TokenIssueTime": input.issuedBefore } },
    });
  }
  if (statements.length === 0) return undefined;
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}

/**
 * Whether a policy document fits a character budget, counted the way IAM counts its inline
 * policy quota: whitespace does not count.
 * @example
 * fitsBudget('{ "a": 1 }', 7); // → true ({"a":1} is 7 characters)
 */
export function fitsBudget(document: string, budget: number = REVOCATION_POLICY_BUDGET_CHARS): boolean {
  return nonWhitespaceLength(document) <= budget;
}

/** Number of non-whitespace characters of a document (IAM's policy size measure). */
export function nonWhitespaceLength(document: string): number {
  return document.replace(/\s/gu, "").length;
}
