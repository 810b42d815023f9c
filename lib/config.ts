import { ConfigError } from "./domain/errors.js";

/** Everything the Lambdas read from their environment, read once at cold start. */
export interface LambdaConfig {
  readonly tableName: string;
  readonly issuersFile: string;
  readonly region: string | undefined;
}

/**
 * Reads the environment once and fails fast naming the missing variable.
 * @throws ConfigError when a required variable is missing or empty
 */
export function readLambdaConfig(env: NodeJS.ProcessEnv = process.env): LambdaConfig {
  return {
    tableName: required(env, "JITV_TABLE_NAME"),
    issuersFile: required(env, "JITV_ISSUERS_FILE"),
    region: env.AWS_REGION,
  };
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (value === undefined || value.trim() === "")
    throw new ConfigError(`missing environment variable ${name}`);
  return value;
}
