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
} as const;

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
