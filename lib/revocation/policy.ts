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

/**
 * Revocation overflow managed policies a `JitTargetRole` carries by default (IAM allows 10 managed
 * policies per role; two stay free for the team's own). With the inline policy they hold the ids
 * of about 1,600 ended tasks per role before the dated cutoff is needed.
 */
export const DEFAULT_OVERFLOW_POLICIES = 8;

/** IAM path of the revocation overflow managed policies (`JitTargetRole` creates them there). */
export const OVERFLOW_POLICY_PATH = "/jitv/revocation/";

/** IAM's quota on one customer-managed policy (non-whitespace characters). */
export const MANAGED_POLICY_QUOTA_CHARS = 6144;

/**
 * The document of an overflow managed policy that denies nothing (a managed policy version needs
 * a statement): its condition names no task id jitv ever issues.
 */
export const EMPTY_OVERFLOW_DOCUMENT = JSON.stringify({
  Version: "2012-10-17",
  Statement: [
    {
      Sid: "JitvRevokedTasks",
      Effect: "Deny",
      Action: "*",
      Resource: "*",
      Condition: { StringEquals: { [TASK_TAG_CONDITION_KEY]: "jitv-none" } },
    },
  ],
});

/**
 * The document of one overflow managed policy: the ids placed in it, or
 * {@link EMPTY_OVERFLOW_DOCUMENT} when none.
 */
export function renderOverflowPolicy(taskIds: readonly string[]): string {
  return renderRevocationPolicy({ taskIds }) ?? EMPTY_OVERFLOW_DOCUMENT;
}

/** A revoked task to place: its id and the slot it already occupies (0 = inline, 1… = overflow). */
export interface PlacedTask {
  readonly taskId: string;
  readonly slot?: number;
}

/**
 * Places revoked task ids in the role's documents without moving any id that is already placed
 * (so no write order can open a window where a revoked id is in no document): ids keep their
 * slot while it still fits; new ids (and ids whose slot no longer fits) go to the first slot
 * with room. Slot 0 is the inline policy (`inlineBudget`, with the cutoff statement), slots
 * 1…`overflowSlots` the overflow managed policies ({@link MANAGED_POLICY_QUOTA_CHARS} each).
 *
 * @returns the ids per slot and the new placements, or `undefined` when they do not all fit
 */
export function placeRevocations(input: {
  readonly tasks: readonly PlacedTask[];
  readonly issuedBefore?: string;
  readonly inlineBudget: number;
  readonly overflowSlots: number;
}): { readonly slots: string[][]; readonly placed: ReadonlyMap<string, number> } | undefined {
  const cutoff = input.issuedBefore === undefined ? {} : { issuedBefore: input.issuedBefore };
  const count = input.overflowSlots + 1;
  const budget = (slot: number) => (slot === 0 ? input.inlineBudget : MANAGED_POLICY_QUOTA_CHARS);
  const fits = (slot: number, ids: readonly string[]) => {
    const document =
      slot === 0 ? renderRevocationPolicy({ taskIds: ids, ...cutoff }) : renderOverflowPolicy(ids);
    return document === undefined || fitsBudget(document, budget(slot));
  };
  const slots: string[][] = Array.from({ length: count }, () => []);
  const homeless: string[] = [];
  for (const task of input.tasks) {
    const slot = task.slot;
    if (slot !== undefined && slot >= 0 && slot < count) slots[slot]?.push(task.taskId);
    else homeless.push(task.taskId);
  }
  // A slot that shrank (the role's own inline policies grew) gives its last ids back.
  for (const [slot, ids] of slots.entries()) {
    while (ids.length > 0 && !fits(slot, ids)) homeless.push(ids.pop() as string);
  }
  // Each slot's size only grows while placing, so a full slot stays full: start after it.
  const placed = new Map<string, number>();
  let first = 0;
  for (const taskId of homeless) {
    for (;;) {
      const ids = slots[first];
      if (ids === undefined) return undefined;
      ids.push(taskId);
      if (fits(first, ids)) break;
      ids.pop();
      first++;
    }
    placed.set(taskId, first);
  }
  return { slots, placed };
}
