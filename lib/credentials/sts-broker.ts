import { AssumeRoleCommand, type AssumeRoleCommandOutput, type STSClient } from "@aws-sdk/client-sts";
import {
  awsFailure,
  isRetryableAwsError,
  type RetryAwsOptions,
  type RetryTimingProps,
  resolveRetryOptions,
  retryAws,
} from "../aws-retry.js";
import {
  ForbiddenError,
  InvalidRequestError,
  type JitvError,
  UpstreamUnavailableError,
} from "../domain/errors.js";
import type { AssumeRoleRequest, IssuedCredentials } from "../domain/sts.js";
import { assertStsLimits, assumeRoleInput } from "../domain/sts-request.js";
import type { CredentialBroker } from "./broker.js";

/** Options of {@link StsBroker}. */
export interface StsBrokerProps extends RetryTimingProps {
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
  /** Called before each retry of a throttled or failed call (the deployment counts `StsThrottled`). */
  readonly onRetry?: (error: unknown) => void;
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
  readonly #retry: RetryAwsOptions;
  readonly #onRetry: (error: unknown) => void;

  constructor(props: StsBrokerProps) {
    this.#onRetry = props.onRetry ?? (() => undefined);
    this.#client = props.client;
    this.#retry = {
      ...resolveRetryOptions(props, { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 2000 }),
      isRetryable: isRetryableAwsError,
      onRetry: (error) => this.#onRetry(error),
    };
  }

  async assumeRole(request: AssumeRoleRequest): Promise<IssuedCredentials> {
    assertStsLimits(request);
    const input = assumeRoleInput(request);
    let attempts = 0;
    let output: AssumeRoleCommandOutput;
    try {
      output = await retryAws(() => {
        attempts++;
        return this.#client.send(new AssumeRoleCommand(input));
      }, this.#retry);
    } catch (error) {
      throw toJitvError(error, attempts);
    }
    return toIssuedCredentials(output);
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

function toJitvError(error: unknown, attempts: number): JitvError {
  const cause = awsFailure(error, attempts);
  switch (cause.name) {
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
        isRetryableAwsError(error)
          ? `STS kept failing after ${attempts} attempts; nothing was issued`
          : "STS AssumeRole failed; nothing was issued",
        { cause },
      );
  }
}
