import { RotateSecretCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import {
  awsErrorName,
  awsFailure,
  errorShape,
  isRetryableAwsError,
  type RetryAwsOptions,
  type RetryTimingProps,
  resolveRetryOptions,
  retryAws,
} from "../aws-retry.js";
import { UpstreamUnavailableError } from "../domain/errors.js";
import { RotationInProgressError, SecretNotFoundError, type SecretRotator } from "./secret-rotator.js";

/** Options of {@link SecretsManagerRotator}. */
export interface SecretsManagerRotatorProps extends RetryTimingProps {
  /**
   * The Secrets Manager client. Build it with `maxAttempts: 1`: the rotator retries itself, and
   * the SDK's own retries would multiply with them.
   */
  readonly client: SecretsManagerClient;
  /**
   * Calls to `RotateSecret` per rotation, the first included.
   * @default 4
   */
  readonly maxAttempts?: number;
  /**
   * Backoff base: attempt n waits a random time in [0, min(5000, baseDelayMs × 2^(n-1))).
   * @default 200
   */
  readonly baseDelayMs?: number;
}

const MAX_DELAY_MS = 5000;
/** Secrets Manager's retryable failures beyond those every AWS service has. */
const SECRETS_MANAGER_RETRYABLE_ERRORS = ["InternalServiceError", "ServiceUnavailable"];
/**
 * How Secrets Manager says a rotation is under way ("A previous rotation isn't complete. That
 * rotation will be reattempted."), and older wordings of the same.
 */
const IN_PROGRESS_MESSAGE = /previous rotation isn['’]?t complete|rotation (is )?(already )?in progress/i;

/**
 * Adapter: the {@link SecretRotator} that asks Secrets Manager to rotate a secret now. It sends
 * exactly `RotateSecret { SecretId, RotateImmediately: true }`: the secret's rotation Lambda and
 * schedule are configured on the secret, and jitv only triggers a rotation. `rotate` resolves once
 * Secrets Manager accepted the request; the rotation itself runs asynchronously in that Lambda.
 *
 * Throttling, HTTP 429/5xx and network errors are retried with full-jitter exponential backoff
 * (build the client with `maxAttempts: 1` so only these retries happen). Failures:
 *
 * | Secrets Manager error | thrown |
 * | --- | --- |
 * | `InvalidRequestException` "a previous rotation isn't complete" | `RotationInProgressError` (retry later) |
 * | `ResourceNotFoundException` | `SecretNotFoundError` (`not_found`) |
 * | retries exhausted, anything else | `UpstreamUnavailableError`, without AWS's message |
 *
 * The SDK gives each attempt its own `ClientRequestToken`, so if an attempt that timed out did
 * start a rotation, the retry sees it in progress and throws `RotationInProgressError`; the
 * caller's later retry then rotates once more, which is harmless.
 *
 * @example
 * const rotator = new SecretsManagerRotator({ client: new SecretsManagerClient({ maxAttempts: 1 }) });
 * await rotator.rotate("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-creds-AbCdEf");
 */
export class SecretsManagerRotator implements SecretRotator {
  readonly #client: SecretsManagerClient;
  readonly #retry: RetryAwsOptions;

  constructor(props: SecretsManagerRotatorProps) {
    this.#client = props.client;
    this.#retry = {
      // The cap on a wait is fixed, not a prop: ignore one that a wider props object carries.
      ...resolveRetryOptions(
        { ...props, maxDelayMs: undefined },
        { maxAttempts: 4, baseDelayMs: 200, maxDelayMs: MAX_DELAY_MS },
      ),
      isRetryable,
    };
  }

  /**
   * Starts an immediate rotation of the secret.
   * @throws RotationInProgressError when a rotation of the secret is already under way
   * @throws SecretNotFoundError when the secret does not exist
   * @throws UpstreamUnavailableError when Secrets Manager refused or kept failing
   */
  async rotate(secretArn: string): Promise<void> {
    let attempts = 0;
    try {
      await retryAws(() => {
        attempts++;
        return this.#client.send(new RotateSecretCommand({ SecretId: secretArn, RotateImmediately: true }));
      }, this.#retry);
    } catch (error) {
      throw toRotateError(error, secretArn, attempts);
    }
  }
}

function isRetryable(error: unknown): boolean {
  return isRetryableAwsError(error, SECRETS_MANAGER_RETRYABLE_ERRORS);
}

function isRotationInProgress(error: unknown): boolean {
  const { name, message, Message } = errorShape(error);
  if (name !== "InvalidRequestException") return false;
  return [message, Message].some((text) => typeof text === "string" && IN_PROGRESS_MESSAGE.test(text));
}

function toRotateError(error: unknown, secretArn: string, attempts: number): Error {
  if (isRotationInProgress(error)) return new RotationInProgressError(secretArn);
  if (awsErrorName(error) === "ResourceNotFoundException") return new SecretNotFoundError(secretArn);
  const cause = awsFailure(error, attempts);
  const message = isRetryable(error)
    ? `Secrets Manager kept failing after ${attempts} attempts; the secret was not rotated`
    : "Secrets Manager refused RotateSecret; the secret was not rotated";
  return new UpstreamUnavailableError(message, { cause });
}
