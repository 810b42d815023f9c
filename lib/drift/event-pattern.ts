import { REVOKER_ROLE_NAME } from "../domain/accounts.js";

/**
 * The EventBridge event pattern that selects CloudTrail records of jitv sessions, used by the
 * deployed rules (target accounts forward with it, the vending account's rule feeds the `drift`
 * Lambda with it) and by the sandbox, which runs it through {@link matchesEventPattern} so a
 * posted record reaches the detector exactly when the deployed rule would deliver it.
 */

/** A value test of an event pattern: exact value, or one of the operators jitv uses. */
export type PatternValue =
  | string
  | number
  | boolean
  | null
  | { readonly prefix: string }
  | { readonly "anything-but": string | number | readonly (string | number)[] | { readonly prefix: string } }
  | { readonly exists: boolean };

/** An EventBridge event pattern (the subset {@link matchesEventPattern} implements). */
export interface EventPattern {
  readonly [field: string]: EventPattern | readonly PatternValue[];
}

/** The `detail-type` of CloudTrail records (management and data events) on EventBridge. */
export const CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail";

/**
 * API calls made with sessions of roles whose ARN starts with one of `roleArnPrefixes` (a role
 * path: `arn:aws:iam::210987654321:role/jitv/`), except the revoker role's own sessions. The role
 * is matched on `sessionContext.sessionIssuer.arn`, which carries the role's path (the session's
 * own ARN does not); session tags are not in CloudTrail, and the detector joins a record to its
 * task by session name.
 *
 * @example
 * new Rule(this, "Forward", { eventPattern: driftEventPattern(["arn:aws:iam::210987654321:role/jitv/"]) });
 */
export function driftEventPattern(roleArnPrefixes: readonly string[]): EventPattern {
  return {
    "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
    detail: {
      eventType: ["AwsApiCall"],
      userIdentity: {
        type: ["AssumedRole"],
        sessionContext: {
          sessionIssuer: {
            arn: roleArnPrefixes.map((prefix) => ({ prefix })),
            userName: [{ "anything-but": REVOKER_ROLE_NAME }],
          },
        },
      },
    },
  };
}

/**
 * EventBridge's matching for the subset of patterns jitv writes: nested fields (all must match),
 * value lists (any may match; an array in the event matches when any element does), exact values,
 * `prefix`, `anything-but` (values, or `{prefix}`) and `exists`. As in EventBridge, only
 * `exists: false` matches a missing field.
 *
 * @throws Error on an operator outside that subset, so a pattern is never judged by half a matcher
 * @example
 * matchesEventPattern({ source: ["aws.s3"] }, { source: "aws.s3", detail: {} }); // → true
 */
export function matchesEventPattern(pattern: EventPattern, event: unknown): boolean {
  if (!isObject(event)) return false;
  return Object.entries(pattern).every(([field, test]) => {
    const value = event[field];
    if (Array.isArray(test)) return (test as readonly PatternValue[]).some((t) => matchesValue(t, value));
    return matchesEventPattern(test as EventPattern, value);
  });
}

function matchesValue(test: PatternValue, value: unknown): boolean {
  if (isObject(test) && "exists" in test) return (value !== undefined) === test.exists;
  if (value === undefined) return false;
  if (Array.isArray(value)) return value.some((element) => matchesValue(test, element));
  if (!isObject(test)) return test === value;
  if ("prefix" in test) return typeof value === "string" && value.startsWith(test.prefix);
  if ("anything-but" in test) {
    const excluded = test["anything-but"];
    if (isObject(excluded) && "prefix" in excluded) {
      return typeof value === "string" && !value.startsWith(excluded.prefix);
    }
    return !(Array.isArray(excluded) ? excluded : [excluded]).includes(value);
  }
  throw new Error(`unsupported event pattern operator: ${Object.keys(test).join(", ")}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
