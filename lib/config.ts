import { parseAccountList } from "./domain/accounts.js";
import { ConfigError } from "./domain/errors.js";

/**
 * The environment of the jitv Lambdas, read once at cold start. Each function reads only
 * what it uses; a missing variable fails the cold start naming it.
 */
export const ENV = {
  tableName: "JITV_TABLE_NAME",
  issuersFile: "JITV_ISSUERS_FILE",
  stateMachineArn: "JITV_STATE_MACHINE_ARN",
  /** Optional: the EventBridge bus for `Task pending approval` events (default bus when unset). */
  eventBusName: "JITV_EVENT_BUS_NAME",
  /** The vending account's id: its roles are revoked with the function's own credentials. */
  accountId: "JITV_ACCOUNT_ID",
  /**
   * The accounts jitv may vend into and revoke in (comma-separated; the vending account included).
   * Every other account's roles are written through its revoker role.
   */
  targetAccounts: "JITV_TARGET_ACCOUNTS",
} as const;

/**
 * The target accounts from `JITV_TARGET_ACCOUNTS`, or `undefined` when unset.
 * @throws ConfigError when an entry is not a 12-digit account id
 */
export function targetAccountsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] | undefined {
  const value = env[ENV.targetAccounts];
  if (value === undefined || value.trim() === "") return undefined;
  try {
    return parseAccountList(value);
  } catch (error) {
    throw new ConfigError(`${ENV.targetAccounts}: ${(error as Error).message}`);
  }
}

/**
 * @throws ConfigError when the variable is missing or empty
 * @example const table = requireEnv("JITV_TABLE_NAME")
 */
export function requireEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (value === undefined || value.trim() === "")
    throw new ConfigError(`missing environment variable ${name}`);
  return value;
}
