import { RotateSecretCommand, type SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { UpstreamUnavailableError } from "../domain/errors.js";
import { RotationInProgressError, SecretNotFoundError, type SecretRotator } from "./secret-rotator.js";

/** Options of {@link SecretsManagerRotator}. */
export interface SecretsManagerRotatorProps {
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
  /** Injected in tests so retries do not really wait. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Random number in [0, 1) for the jitter. @default Math.random */
  readonly random?: () => number;
}

const MAX_DELAY_MS = 5000;
const THROTTLING_ERRORS = new Set([
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
]);
const TRANSIENT_ERRORS = new Set([
  "InternalServiceError",
  "InternalFailure",
  "ServiceUnavailable",
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
]);
const NETWORK_ERROR_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
]);
/**
 * How Secrets Manager says a rotation is under way ("A previous rotation isn't complete. That
 * rotation will be reattempted."), and older wordings of the same.
 */
const IN_PROGRESS_MESSAGE = /previous rotation isn['’]?t complete|rotation (is )?(already )?in progress/i;

/** What is safe to keep of a Secrets Manager failure for operators' logs: no message text. */
interface RotateFailure {
  readonly name: string;
  readonly httpStatusCode?: number;
  readonly requestId?: string;
  readonly attempts: number;
}

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
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;

  constructor(props: SecretsManagerRotatorProps) {
    this.#client = props.client;
    this.#maxAttempts = Math.max(1, Math.floor(props.maxAttempts ?? 4));
    this.#baseDelayMs = Math.max(0, props.baseDelayMs ?? 200);
    this.#sleep = props.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#random = props.random ?? Math.random;
  }

  /**
   * Starts an immediate rotation of the secret.
   * @throws RotationInProgressError when a rotation of the secret is already under way
   * @throws SecretNotFoundError when the secret does not exist
   * @throws UpstreamUnavailableError when Secrets Manager refused or kept failing
   */
  async rotate(secretArn: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#client.send(new RotateSecretCommand({ SecretId: secretArn, RotateImmediately: true }));
        return;
      } catch (error) {
        if (isRetryable(error) && attempt < this.#maxAttempts) {
          const ceiling = Math.min(MAX_DELAY_MS, this.#baseDelayMs * 2 ** (attempt - 1));
          await this.#sleep(Math.floor(this.#random() * ceiling));
          continue;
        }
        throw toRotateError(error, secretArn, attempt);
      }
    }
  }
}

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  Message?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
  $retryable?: { throttling?: unknown };
}

function shapeOf(error: unknown): ErrorShape {
  return typeof error === "object" && error !== null ? (error as ErrorShape) : {};
}

function httpStatusOf(error: unknown): number | undefined {
  const status = shapeOf(error).$metadata?.httpStatusCode;
  return typeof status === "number" ? status : undefined;
}

function isRetryable(error: unknown): boolean {
  const { name, code, $retryable } = shapeOf(error);
  if (typeof name === "string" && (THROTTLING_ERRORS.has(name) || TRANSIENT_ERRORS.has(name))) return true;
  if (typeof code === "string" && NETWORK_ERROR_CODES.has(code)) return true;
  if ($retryable?.throttling === true) return true;
  const status = httpStatusOf(error);
  return status === 429 || (status !== undefined && status >= 500);
}

function isRotationInProgress(error: unknown): boolean {
  const { name, message, Message } = shapeOf(error);
  if (name !== "InvalidRequestException") return false;
  return [message, Message].some((text) => typeof text === "string" && IN_PROGRESS_MESSAGE.test(text));
}

function toRotateError(error: unknown, secretArn: string, attempts: number): Error {
  if (isRotationInProgress(error)) return new RotationInProgressError(secretArn);
  const shape = shapeOf(error);
  const name = typeof shape.name === "string" ? shape.name : "UnknownError";
  if (name === "ResourceNotFoundException") return new SecretNotFoundError(secretArn);
  const requestId = shape.$metadata?.requestId;
  const httpStatusCode = httpStatusOf(error);
  const cause: RotateFailure = {
    name,
    attempts,
    ...(httpStatusCode === undefined ? {} : { httpStatusCode }),
    ...(typeof requestId === "string" ? { requestId } : {}),
  };
  const message = isRetryable(error)
    ? `Secrets Manager kept failing after ${attempts} attempts; the secret was not rotated`
    : "Secrets Manager refused RotateSecret; the secret was not rotated";
  return new UpstreamUnavailableError(message, { cause });
}
