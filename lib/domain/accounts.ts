import { ForbiddenError, InternalError, InvalidRequestError } from "./errors.js";

/** An IAM role ARN (any partition, optional path). One pattern for templates, STS requests and revocation. */
export const ROLE_ARN_PATTERN = /^arn:aws[a-z-]*:iam::(\d{12}):role\/[\w+=,.@/-]{1,512}$/;

/** A 12-digit AWS account id. */
export const ACCOUNT_ID_PATTERN = /^\d{12}$/;

/**
 * The account of an IAM role ARN.
 * @returns the 12-digit account id, or `undefined` when `roleArn` is not a role ARN
 * @example
 * accountOf("arn:aws:iam::123456789012:role/jitv/reader"); // → "123456789012"
 */
export function accountOf(roleArn: string): string | undefined {
  return ROLE_ARN_PATTERN.exec(roleArn)?.[1];
}

/**
 * The target accounts of a deployment (CONTRACT.md section 4): the accounts jitv may vend into,
 * because it can also revoke there (the vending account, and every account whose revoker role
 * the target-account stack created). `undefined` means the deployment has not said, and nothing
 * is checked (a deployment always says; tests and tools may not).
 */
export type TargetAccounts = readonly string[] | undefined;

/**
 * Refuses a template whose role is in an account that is not a target account, at `put` time.
 * @throws InvalidRequestError naming the account
 */
export function assertTargetAccountForPut(roleArn: string, accounts: TargetAccounts): void {
  if (roleArn.endsWith(`:role${REVOKER_ROLE_PATH}${REVOKER_ROLE_NAME}`)) {
    throw new InvalidRequestError("roleArn names jitv's own revoker role, which is never vended");
  }
  const account = accountOf(roleArn);
  if (accounts !== undefined && (account === undefined || !accounts.includes(account))) {
    throw new InvalidRequestError(
      `roleArn is in account ${account ?? "(none)"}, which is not a registered target account of this deployment; deploy the target-account stack there and add it to targetAccounts`,
    );
  }
}

/**
 * Refuses to vend from a template whose role is in an account jitv could not revoke in (a
 * template stored before the account was removed, or written around `put`): no credential
 * leaves that revocation could not reach.
 * @throws ForbiddenError
 */
export function assertTargetAccountForVend(roleArn: string, accounts: TargetAccounts): void {
  const account = accountOf(roleArn);
  if (accounts !== undefined && (account === undefined || !accounts.includes(account))) {
    throw new ForbiddenError("the template's role is in an account that is not a registered target account");
  }
}

/**
 * Parses a list of account ids (comma- or whitespace-separated, or a JSON array).
 * @throws InvalidRequestError naming the entries that are not 12-digit account ids
 */
export function parseAccountList(value: string | readonly string[]): string[] {
  const items = typeof value === "string" ? value.split(/[\s,]+/).filter((v) => v !== "") : [...value];
  const bad = items.filter((item) => !ACCOUNT_ID_PATTERN.test(item));
  if (bad.length > 0) throw new InvalidRequestError(`not 12-digit AWS account ids: ${bad.join(", ")}`);
  return [...new Set(items)];
}

/** The revoker role the target-account stack creates in each target account. */
export const REVOKER_ROLE_NAME = "jitv-revoker";
/** Its IAM path: jitv's own roles live under `/jitv/`. */
export const REVOKER_ROLE_PATH = "/jitv/";

/**
 * The IAM role tag that marks the vending stack's revoking functions; the revoker roles trust
 * only principals carrying it (`aws:PrincipalTag`), so no other role of the vending account can
 * write to a target account's roles.
 */
export const REVOKER_CALLER_TAG = "jitv:revoker-caller";

/**
 * The revoker role in the account of `roleArn` (same partition).
 * @example
 * revokerRoleArn("arn:aws:iam::210987654321:role/jitv/reader"); // → "arn:aws:iam::210987654321:role/jitv/jitv-revoker"
 */
export function revokerRoleArn(roleArn: string): string {
  const account = accountOf(roleArn);
  const partition = /^arn:(aws[a-z-]*):/.exec(roleArn)?.[1];
  if (account === undefined || partition === undefined) throw new InternalError("not an IAM role ARN");
  return `arn:${partition}:iam::${account}:role${REVOKER_ROLE_PATH}${REVOKER_ROLE_NAME}`;
}
