/**
 * Retrying AWS calls and classifying their failures, shared by the adapters that build their
 * SDK clients with `maxAttempts: 1` and retry themselves. Tied to no single SDK client: it reads
 * only the shape every AWS SDK v3 error has (`name`, `code`, `$metadata`, `$retryable`).
 */

/** The fields of an AWS SDK v3 error (or a Node.js network error) that jitv reads; all may be absent. */
export interface AwsErrorShape {
  readonly name?: unknown;
  readonly code?: unknown;
  readonly message?: unknown;
  readonly Message?: unknown;
  readonly $metadata?: { readonly httpStatusCode?: unknown; readonly requestId?: unknown };
  readonly $retryable?: { readonly throttling?: unknown };
}

/** What is safe to keep of an AWS failure for operators' logs: no message text, no credentials. */
export interface AwsFailure {
  readonly name: string;
  readonly httpStatusCode?: number;
  readonly requestId?: string;
  readonly attempts: number;
}

/** The injectable waiting and randomness of an adapter's retries. */
export interface RetryTimingProps {
  /** Injected in tests so retries do not really wait. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Random number in [0, 1) for the jitter. @default Math.random */
  readonly random?: () => number;
}

/** Options of {@link retryAws}. */
export interface RetryAwsOptions extends RetryTimingProps {
  /** Calls in all, the first included; the failure of the last one is thrown. */
  readonly maxAttempts: number;
  /**
   * Backoff base: before attempt n + 1 the wait is a random time in
   * [0, min(maxDelayMs, baseDelayMs × 2^(n-1))), rounded down to whole milliseconds.
   * @default 100
   */
  readonly baseDelayMs?: number;
  /**
   * Cap on one backoff wait.
   * @default Infinity
   */
  readonly maxDelayMs?: number;
  /** Called before each retry's wait with the failure and the number of the attempt that failed. */
  readonly onRetry?: (error: unknown, attempt: number) => void;
  /**
   * Which failures are worth another attempt.
   * @default isRetryableAwsError
   */
  readonly isRetryable?: (error: unknown) => boolean;
}

/**
 * Error names every AWS service may answer with when a retry can succeed: throttling,
 * timeouts and internal failures.
 */
const RETRYABLE_ERROR_NAMES = new Set([
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
  "InternalFailure",
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
]);
/** Node.js and undici codes of a connection that failed or broke; the request may never have arrived. */
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

const sleepWithTimer = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The thrown value seen as an AWS error; anything that is not an object has none of the fields.
 * @example
 * errorShape(new ThrottlingException({ $metadata: {}, message: "Rate exceeded" })).name; // → "ThrottlingException"
 */
export function errorShape(error: unknown): AwsErrorShape {
  return typeof error === "object" && error !== null ? (error as AwsErrorShape) : {};
}

/** The error's name, or `"UnknownError"` when it has none. */
export function awsErrorName(error: unknown): string {
  const { name } = errorShape(error);
  return typeof name === "string" ? name : "UnknownError";
}

/** The HTTP status AWS answered with, or `undefined` when the call got no answer. */
export function httpStatusOf(error: unknown): number | undefined {
  const status = errorShape(error).$metadata?.httpStatusCode;
  return typeof status === "number" ? status : undefined;
}

/**
 * Whether another attempt of the failed call can succeed: throttling, timeouts, internal
 * failures, network errors, the SDK's own throttling flag, and HTTP 429 or 5xx.
 * @param extraNames error names the particular service also asks to retry
 * @example
 * isRetryableAwsError(error, ["ConcurrentModificationException"]);
 */
export function isRetryableAwsError(error: unknown, extraNames: readonly string[] = []): boolean {
  const { name, code, $retryable } = errorShape(error);
  if (typeof name === "string" && (RETRYABLE_ERROR_NAMES.has(name) || extraNames.includes(name))) return true;
  if (typeof code === "string" && NETWORK_ERROR_CODES.has(code)) return true;
  if ($retryable?.throttling === true) return true;
  const status = httpStatusOf(error);
  return status === 429 || (status !== undefined && status >= 500);
}

/**
 * What of a failure may go to operators' logs, as the `cause` of the error jitv throws.
 * @param attempts the calls made, the failed one included
 */
export function awsFailure(error: unknown, attempts: number): AwsFailure {
  const requestId = errorShape(error).$metadata?.requestId;
  const httpStatusCode = httpStatusOf(error);
  return {
    name: awsErrorName(error),
    attempts,
    ...(httpStatusCode === undefined ? {} : { httpStatusCode }),
    ...(typeof requestId === "string" ? { requestId } : {}),
  };
}

/**
 * The options of {@link retryAws} from an adapter's props: its defaults where a prop is
 * missing, at least one attempt, no negative delays, and `setTimeout` and `Math.random` as
 * the timing.
 */
export function resolveRetryOptions(
  props: RetryTimingProps & {
    readonly maxAttempts?: number;
    readonly baseDelayMs?: number;
    readonly maxDelayMs?: number;
  },
  defaults: { readonly maxAttempts: number; readonly baseDelayMs: number; readonly maxDelayMs: number },
): Required<Pick<RetryAwsOptions, "maxAttempts" | "baseDelayMs" | "maxDelayMs" | "sleep" | "random">> {
  return {
    // `|| 1`: Math.max passes NaN through, and a NaN limit means a single attempt.
    maxAttempts: Math.max(1, Math.floor(props.maxAttempts ?? defaults.maxAttempts)) || 1,
    baseDelayMs: Math.max(0, props.baseDelayMs ?? defaults.baseDelayMs),
    maxDelayMs: Math.max(0, props.maxDelayMs ?? defaults.maxDelayMs),
    sleep: props.sleep ?? sleepWithTimer,
    random: props.random ?? Math.random,
  };
}

/**
 * Calls `call` until it succeeds, fails with an error that is not retryable, or has been
 * called `maxAttempts` times, waiting between attempts with full-jitter exponential backoff.
 * The last failure is thrown as it is; count the calls in `call` to report the attempts.
 *
 * @example
 * const output = await retryAws(() => sts.send(new AssumeRoleCommand(input)), {
 *   maxAttempts: 4,
 *   baseDelayMs: 100,
 *   maxDelayMs: 2000,
 * });
 */
export async function retryAws<T>(call: () => Promise<T>, options: RetryAwsOptions): Promise<T> {
  const isRetryable = options.isRetryable ?? isRetryableAwsError;
  const sleep = options.sleep ?? sleepWithTimer;
  const delayMs = (attempt: number) => fullJitterDelayMs(attempt, options);
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= options.maxAttempts || !isRetryable(error)) throw error;
      options.onRetry?.(error, attempt);
      await sleep(delayMs(attempt));
    }
  }
}

/**
 * The full-jitter wait after failed attempt n: a random whole number of milliseconds in
 * [0, min(maxDelayMs, baseDelayMs × 2^(n-1))).
 */
export function fullJitterDelayMs(
  attempt: number,
  options: Pick<RetryAwsOptions, "baseDelayMs" | "maxDelayMs" | "random">,
): number {
  const ceiling = Math.min(options.maxDelayMs ?? Infinity, (options.baseDelayMs ?? 100) * 2 ** (attempt - 1));
  return Math.floor((options.random ?? Math.random)() * ceiling);
}
