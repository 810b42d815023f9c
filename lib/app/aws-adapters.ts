import { IAMClient } from "@aws-sdk/client-iam";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { SFNClient } from "@aws-sdk/client-sfn";
import { STSClient } from "@aws-sdk/client-sts";
import { ENV, targetAccountsFromEnv } from "../config.js";
import { IamRolePolicyWriter } from "../revocation/iam-role-policy-writer.js";
import { RevokerIamClients } from "../revocation/revoker-clients.js";
import { SecretsManagerRotator } from "../secrets/secrets-manager-rotator.js";
import { SfnTaskTokenSender } from "../tasks/sfn-lifecycle.js";

// One factory per AWS client a lifecycle function may call. Each is its own export so that a
// function's bundle keeps only the clients its file names (esbuild drops the unused ones).

/**
 * Revocation's IAM writes: the function's own client for the vending account's roles; with
 * other target accounts configured, each account's revoker role for its roles (by ARN).
 */
export function awsRolePolicyWriter(): IamRolePolicyWriter {
  const home = new IAMClient({ maxAttempts: 1 });
  const accounts = targetAccountsFromEnv();
  const homeAccount = process.env[ENV.accountId];
  const client =
    !accounts || !homeAccount || accounts.every((account) => account === homeAccount)
      ? home
      : new RevokerIamClients({ homeAccount, home, sts: new STSClient({}) }).forRole;
  return new IamRolePolicyWriter({ client });
}

/** `RotateSecret` calls (the rotator retries itself; the SDK's own retries are off). */
export function awsSecretRotator(): SecretsManagerRotator {
  return new SecretsManagerRotator({ client: new SecretsManagerClient({ maxAttempts: 1 }) });
}

/** Answers to the lifecycle's task tokens. */
export function awsTaskTokenSender(): SfnTaskTokenSender {
  return new SfnTaskTokenSender({ client: new SFNClient({}) });
}
