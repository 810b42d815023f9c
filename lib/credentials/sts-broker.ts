import { AssumeRoleCommand, type AssumeRoleCommandOutput, type STSClient } from "@aws-sdk/client-sts";
import {
  ForbiddenError,
  InvalidRequestError,
  type JitvError,
  UpstreamUnavailableError,
} from "../domain/errors.js";
import type { AssumeRoleRequest, IssuedCredentials } from "../domain/sts.js";
import { assertStsLimits } from "../domain/sts-request.js";
import type { CredentialBroker } from "./broker.js";

/** Options of {@link StsBroker}. */
export interface StsBrokerProps {
  /**
   * The STS client. Build it with `maxAttempts: 1`: the broker retries itself, and the
   * SDK's own retries would multiply with them (4 × 3 calls on a throttled STS).
   */
  readonly client: STSClient;
  /**
   * Calls to STS per request, the first included.
   * @default 4
   */
  readonly maxAttempts?: number;
  /**
   * Backoff base: attempt n waits a random time in [0, min(maxDelayMs, baseDelayMs × 2^(n-1))).
   * @default 100
   */
  readonly baseDelayMs?: number;
  /**
   * Cap on one backoff wait.
   * @default 2000
   */
  readonly maxDelayMs?: number;
  /** Injected in tests so retries do not really wait. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Random number in [0, 1) for the jitter. @default Math.random */
  readonly random?: () => number;
  /** Called before each retry of a throttled or failed call (the deployment counts `StsThrottled`). */
  readonly onRetry?: (error: unknown) => void;
}

const THROTTLING_ERRORS = new Set([
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
]);
const TRANSIENT_ERRORS = new Set([
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "InternalFailure",
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

/** What is safe to keep of an STS failure for operators' logs: no message text, no credentials. */
interface StsFailure {
  readonly name: string;
  readonly httpStatusCode?: number;
  readonly requestId?: string;
  readonly attempts: number;
}

/**
 * Adapter: the {@link CredentialBroker} that calls STS `AssumeRole` (CONTRACT.md section 5).
 *
 * Each request is checked with `assertStsLimits` first, so a request STS would refuse never
 * leaves. The command carries exactly `RoleArn`, `RoleSessionName`, `SourceIdentity`,
 * `Policy`, `Tags` and `DurationSeconds` — no `TransitiveTagKeys`, so the task's tags do not
 * follow further role chaining.
 *
 * Throttling, HTTP 429/5xx and network errors are retried with full-jitter exponential
 * backoff. Build the `STSClient` with `maxAttempts: 1` so only these retries happen.
 * Failures become contract errors whose messages never echo credentials or ARNs:
 *
 * | STS error | jitv error |
 * | --- | --- |
 * | `PackedPolicyTooLarge` | `invalid_request` |
 * | `MalformedPolicyDocument`, `ValidationError` | `invalid_request` |
 * | `AccessDenied` | `forbidden` (the target role does not trust jitv for this session) |
 * | `RegionDisabledException`, retries exhausted, anything else | `upstream_unavailable` |
 *
 * @example
 * const broker = new StsBroker({ client: new STSClient({ maxAttempts: 1 }) });
 * const credentials = await broker.assumeRole(buildAssumeRoleRequest({ task, template, now: new Date() }));
 */
export class StsBroker implements CredentialBroker {
  readonly #client: STSClient;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #onRetry: (error: unknown) => void;

  constructor(props: StsBrokerProps) {
    this.#onRetry = props.onRetry ?? (() => undefined);
    this.#client = props.client;
    this.#maxAttempts = Math.max(1, Math.floor(props.maxAttempts ?? 4));
    this.#baseDelayMs = Math.max(0, props.baseDelayMs ?? 100);
    this.#maxDelayMs = Math.max(0, props.maxDelayMs ?? 2000);
    this.#sleep = props.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#random = props.random ?? Math.random;
  }

  async assumeRole(request: AssumeRoleRequest): Promise<IssuedCredentials> {
    assertStsLimits(request);
    const input = {
      RoleArn: request.roleArn,
      RoleSessionName: request.roleSessionName,
      SourceIdentity: request.sourceIdentity,
      Policy: request.policy,
      Tags: request.tags.map((tag) => ({ Key: tag.Key, Value: tag.Value })),
      DurationSeconds: request.durationSeconds,
    };
    for (let attempt = 1; ; attempt++) {
      let output: AssumeRoleCommandOutput;
      try {
        output = await this.#client.send(new AssumeRoleCommand(input));
      } catch (error) {
        if (isRetryable(error) && attempt < this.#maxAttempts) {
          this.#onRetry(error);
          const ceiling = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
          await this.#sleep(Math.floor(this.#random() * ceiling));
          continue;
        }
        throw toJitvError(error, attempt);
      }
      return toIssuedCredentials(output);
    }
  }
}

function toIssuedCredentials(output: AssumeRoleCommandOutput): IssuedCredentials {
  const credentials = output.Credentials;
  const expiration = credentials?.Expiration;
  if (
    !credentials?.AccessKeyId ||
    !credentials.SecretAccessKey ||
    !credentials.SessionToken ||
    !(expiration instanceof Date) ||
    Number.isNaN(expiration.getTime())
  ) {
    throw new UpstreamUnavailableError("STS returned an incomplete AssumeRole response; nothing was issued");
  }
  return {
    AccessKeyId: credentials.AccessKeyId,
    SecretAccessKey: credentials.SecretAccessKey,
    SessionToken: credentials.SessionToken,
    Expiration: expiration.toISOString(),
  };
}

interface ErrorShape {
  name?: unknown;
  code?: unknown;
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

function toJitvError(error: unknown, attempts: number): JitvError {
  const shape = shapeOf(error);
  const name = typeof shape.name === "string" ? shape.name : "UnknownError";
  const requestId = shape.$metadata?.requestId;
  const httpStatusCode = httpStatusOf(error);
  const cause: StsFailure = {
    name,
    attempts,
    ...(httpStatusCode === undefined ? {} : { httpStatusCode }),
    ...(typeof requestId === "string" ? { requestId } : {}),
  };
  switch (name) {
    case "PackedPolicyTooLarge":
    case "PackedPolicyTooLargeException":
      return new InvalidRequestError("session policy and tags exceed STS's packed size limit", { cause });
    case "MalformedPolicyDocument":
    case "MalformedPolicyDocumentException":
      return new InvalidRequestError("STS refused the rendered session policy as malformed", { cause });
    case "ValidationError":
      return new InvalidRequestError("STS refused the request as invalid", { cause });
    case "AccessDenied":
    case "AccessDeniedException":
      return new ForbiddenError("the target role does not trust jitv for this session", { cause });
    case "RegionDisabledException":
      return new UpstreamUnavailableError("STS is not activated in this region; nothing was issued", {
        cause,
      });
    default:
      return new UpstreamUnavailableError(
        isRetryable(error)
          ? `STS kept failing after ${attempts} attempts; nothing was issued`
          : "STS AssumeRole failed; nothing was issued",
        { cause },
      );
  }
}
