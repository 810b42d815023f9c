import { describe, expect, it } from "vitest";
import {
  awsFailure,
  errorShape,
  fullJitterDelayMs,
  isRetryableAwsError,
  type RetryAwsOptions,
  resolveRetryOptions,
  retryAws,
} from "../../lib/aws-retry.js";

/** An error shaped like an AWS SDK v3 service exception. */
function awsError(name: string, httpStatusCode?: number, extra: Record<string, unknown> = {}) {
  return Object.assign(new Error("failure"), {
    name,
    $metadata: { httpStatusCode, requestId: "req-1" },
    ...extra,
  });
}

/** A call that fails with each of `failures` in turn, then resolves with "done". */
function failingCall(...failures: unknown[]) {
  let calls = 0;
  const call = async () => {
    const failure = failures[calls];
    calls++;
    if (failure !== undefined) throw failure;
    return "done";
  };
  return { call, calls: () => calls };
}

function recordingOptions(overrides: Partial<RetryAwsOptions> = {}) {
  const sleeps: number[] = [];
  const retries: Array<{ error: unknown; attempt: number }> = [];
  const options: RetryAwsOptions = {
    maxAttempts: 4,
    baseDelayMs: 100,
    maxDelayMs: 250,
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    onRetry: (error, attempt) => retries.push({ error, attempt }),
    ...overrides,
  };
  return { options, sleeps, retries };
}

describe("retryAws", () => {
  it("returns the first success without waiting", async () => {
    const { call, calls } = failingCall();
    const { options, sleeps, retries } = recordingOptions();

    await expect(retryAws(call, options)).resolves.toBe("done");
    expect(calls()).toBe(1);
    expect(sleeps).toEqual([]);
    expect(retries).toEqual([]);
  });

  it("retries retryable errors with full-jitter exponential backoff capped at maxDelayMs", async () => {
    const throttled = awsError("ThrottlingException", 400);
    const { call, calls } = failingCall(throttled, throttled, throttled);
    const { options, sleeps } = recordingOptions();

    await expect(retryAws(call, options)).resolves.toBe("done");
    expect(calls()).toBe(4);
    // floor(0.5 × min(250, 100 × 2^(n-1))) for n = 1, 2, 3
    expect(sleeps).toEqual([50, 100, 125]);
  });

  it("throws the last failure unchanged after maxAttempts calls", async () => {
    const errors = [awsError("InternalFailure", 500), awsError("Throttling", 400), awsError("TimeoutError")];
    const { call, calls } = failingCall(...errors);
    const { options, sleeps } = recordingOptions({ maxAttempts: 3, random: () => 0.99 });

    await expect(retryAws(call, options)).rejects.toBe(errors[2]);
    expect(calls()).toBe(3);
    expect(sleeps).toEqual([99, 198]);
  });

  it("does not retry an error that is not retryable", async () => {
    const denied = awsError("AccessDeniedException", 403);
    const { call, calls } = failingCall(denied);
    const { options, sleeps, retries } = recordingOptions();

    await expect(retryAws(call, options)).rejects.toBe(denied);
    expect(calls()).toBe(1);
    expect(sleeps).toEqual([]);
    expect(retries).toEqual([]);
  });

  it("calls onRetry with the failure and the failed attempt's number before each wait", async () => {
    const first = awsError("ThrottlingException", 400);
    const second = awsError("ServiceException", 503);
    const { call } = failingCall(first, second);
    const events: string[] = [];
    const { options, retries } = recordingOptions({
      sleep: async (ms) => {
        events.push(`sleep ${ms}`);
      },
    });
    const onRetry = options.onRetry;

    await retryAws(call, {
      ...options,
      onRetry: (error, attempt) => {
        events.push(`retry ${attempt}`);
        onRetry?.(error, attempt);
      },
    });
    expect(retries).toEqual([
      { error: first, attempt: 1 },
      { error: second, attempt: 2 },
    ]);
    expect(events).toEqual(["retry 1", "sleep 50", "retry 2", "sleep 100"]);
  });

  it("asks the given isRetryable instead of the AWS default", async () => {
    const conflict = awsError("ConflictException", 409);
    const throttled = awsError("ThrottlingException", 400);
    const isRetryable = (error: unknown) => errorShape(error).name === "ConflictException";

    const retried = failingCall(conflict);
    await expect(retryAws(retried.call, recordingOptions({ isRetryable }).options)).resolves.toBe("done");
    expect(retried.calls()).toBe(2);

    const refused = failingCall(throttled);
    await expect(retryAws(refused.call, recordingOptions({ isRetryable }).options)).rejects.toBe(throttled);
    expect(refused.calls()).toBe(1);
  });

  it("makes a single call when maxAttempts is 1", async () => {
    const throttled = awsError("ThrottlingException", 400);
    const { call, calls } = failingCall(throttled);

    await expect(retryAws(call, recordingOptions({ maxAttempts: 1 }).options)).rejects.toBe(throttled);
    expect(calls()).toBe(1);
  });
});

describe("fullJitterDelayMs", () => {
  it("is a whole number of milliseconds below min(maxDelayMs, baseDelayMs × 2^(attempt-1))", () => {
    const options = { baseDelayMs: 200, maxDelayMs: 5000, random: () => 0.999 };
    expect([1, 2, 3, 4, 5, 6].map((attempt) => fullJitterDelayMs(attempt, options))).toEqual([
      199, 399, 799, 1598, 3196, 4995,
    ]);
    expect(fullJitterDelayMs(3, { ...options, random: () => 0 })).toBe(0);
  });
});

describe("isRetryableAwsError", () => {
  it.each([
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "InternalFailure",
    "TimeoutError",
    "RequestTimeout",
    "RequestTimeoutException",
  ])("retries %s", (name) => {
    expect(isRetryableAwsError(awsError(name, 400))).toBe(true);
  });

  it("retries HTTP 429 and 5xx whatever the name", () => {
    expect(isRetryableAwsError(awsError("SomethingElse", 429))).toBe(true);
    expect(isRetryableAwsError(awsError("SomethingElse", 500))).toBe(true);
    expect(isRetryableAwsError(awsError("SomethingElse", 503))).toBe(true);
  });

  it("retries network errors and what the SDK flags as throttling", () => {
    expect(isRetryableAwsError(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }))).toBe(
      true,
    );
    expect(isRetryableAwsError(awsError("SomethingElse", 400, { $retryable: { throttling: true } }))).toBe(
      true,
    );
  });

  it("does not retry client errors, unknown names or values that are not errors", () => {
    expect(isRetryableAwsError(awsError("AccessDeniedException", 403))).toBe(false);
    expect(isRetryableAwsError(awsError("ValidationException", 400))).toBe(false);
    expect(isRetryableAwsError(awsError("SomethingElse", 400, { $retryable: { throttling: false } }))).toBe(
      false,
    );
    expect(isRetryableAwsError(undefined)).toBe(false);
    expect(isRetryableAwsError("ThrottlingException")).toBe(false);
  });

  it("also retries the service's own extra names", () => {
    const conflict = awsError("ConcurrentModificationException", 409);
    expect(isRetryableAwsError(conflict)).toBe(false);
    expect(isRetryableAwsError(conflict, ["ConcurrentModificationException"])).toBe(true);
  });
});

describe("errorShape and awsFailure", () => {
  it("see no fields in a thrown value that is not an object", () => {
    expect(errorShape(null)).toEqual({});
    expect(errorShape("boom")).toEqual({});
    expect(awsFailure("boom", 1)).toEqual({ name: "UnknownError", attempts: 1 });
  });

  it("keep the name, status, request id and attempts, never the message", () => {
    const failure = awsFailure(awsError("ThrottlingException", 400), 4);
    expect(failure).toStrictEqual({
      name: "ThrottlingException",
      attempts: 4,
      httpStatusCode: 400,
      requestId: "req-1",
    });
  });
});

describe("resolveRetryOptions", () => {
  const defaults = { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 2000 };

  it("fills in the adapter's defaults", () => {
    const options = resolveRetryOptions({}, defaults);
    expect(options).toMatchObject(defaults);
    expect(options.random).toBe(Math.random);
  });

  it("makes at least one attempt and never waits a negative time", () => {
    expect(resolveRetryOptions({ maxAttempts: 0, baseDelayMs: -5, maxDelayMs: -1 }, defaults)).toMatchObject({
      maxAttempts: 1,
      baseDelayMs: 0,
      maxDelayMs: 0,
    });
    expect(resolveRetryOptions({ maxAttempts: 2.7 }, defaults).maxAttempts).toBe(2);
    expect(resolveRetryOptions({ maxAttempts: Number.NaN }, defaults).maxAttempts).toBe(1);
  });
});
