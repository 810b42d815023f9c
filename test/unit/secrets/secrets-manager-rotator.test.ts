import {
  InternalServiceError,
  InvalidRequestException,
  LimitExceededException,
  ResourceNotFoundException,
  RotateSecretCommand,
  SecretsManagerClient,
  SecretsManagerServiceException,
} from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { NotFoundError, UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import {
  RotationInProgressError,
  SecretNotFoundError,
  type SecretRotator,
} from "../../../lib/secrets/secret-rotator.js";
import { SecretsManagerRotator } from "../../../lib/secrets/secrets-manager-rotator.js";

const secretsManager = mockClient(SecretsManagerClient);
const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-creds-AbCdEf";
const ROTATED = { ARN, Name: "db-creds", VersionId: "0b7c9a52-1d0e-4a8e-9f7e-2f1a3c4b5d6e" };

function rotator(options: { maxAttempts?: number } = {}) {
  const sleeps: number[] = [];
  const instance: SecretRotator = new SecretsManagerRotator({
    client: new SecretsManagerClient({ region: "us-east-1", maxAttempts: 1 }),
    ...options,
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
  return { rotator: instance, sleeps };
}

function serviceError(name: string, httpStatusCode: number, message = "failure") {
  return new SecretsManagerServiceException({
    name,
    $fault: httpStatusCode >= 500 ? "server" : "client",
    $metadata: { httpStatusCode, requestId: "req-1" },
    message,
  });
}

function invalidRequest(message: string) {
  return new InvalidRequestException({ $metadata: { httpStatusCode: 400, requestId: "req-2" }, message });
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

beforeEach(() => {
  secretsManager.reset();
});

describe("SecretsManagerRotator", () => {
  it("sends exactly RotateSecret { SecretId, RotateImmediately: true }, once", async () => {
    secretsManager.on(RotateSecretCommand).resolves(ROTATED);

    await rotator().rotator.rotate(ARN);

    const expected = { SecretId: ARN, RotateImmediately: true };
    expect(secretsManager).toHaveReceivedCommandExactlyOnceWith(RotateSecretCommand, expected);
    // The matcher is a partial match: no rotation Lambda, rules or token may be sent along.
    expect(secretsManager.commandCalls(RotateSecretCommand)[0]?.args[0].input).toStrictEqual(expected);
    expect(secretsManager.calls()).toHaveLength(1);
  });

  it.each([
    "A previous rotation isn't complete. That rotation will be reattempted.",
    "Rotation is already in progress for this secret",
  ])("throws RotationInProgressError, without retrying, when Secrets Manager says %j", async (message) => {
    secretsManager.on(RotateSecretCommand).rejects(invalidRequest(message));
    const { rotator: r, sleeps } = rotator();

    const err = await rejection(r.rotate(ARN));

    expect(err).toBeInstanceOf(RotationInProgressError);
    expect(err.message).toBe(`a rotation of ${ARN} is already in progress`);
    expect(secretsManager).toHaveReceivedCommandTimes(RotateSecretCommand, 1);
    expect(sleeps).toEqual([]);
  });

  it.each([
    ["ThrottlingException", serviceError("ThrottlingException", 400, "Rate exceeded")],
    ["Throttling", serviceError("Throttling", 400)],
    ["TooManyRequestsException", serviceError("TooManyRequestsException", 429)],
    [
      "InternalServiceError",
      new InternalServiceError({ $metadata: { httpStatusCode: 500 }, message: "oops" }),
    ],
    ["an HTTP 503", serviceError("ServiceUnavailable", 503)],
    ["ECONNRESET", Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })],
  ])("retries %s with jittered backoff, then succeeds", async (_what, error) => {
    secretsManager.on(RotateSecretCommand).rejectsOnce(error).rejectsOnce(error).resolves(ROTATED);
    const { rotator: r, sleeps } = rotator();

    await r.rotate(ARN);

    expect(secretsManager).toHaveReceivedCommandTimes(RotateSecretCommand, 3);
    // Full jitter with random() = 0.5: half of 200 ms, then half of 400 ms.
    expect(sleeps).toEqual([100, 200]);
    for (const call of secretsManager.commandCalls(RotateSecretCommand)) {
      expect(call.args[0].input).toStrictEqual({ SecretId: ARN, RotateImmediately: true });
    }
  });

  it("jitters each wait within [0, base × 2^(n-1))", async () => {
    secretsManager.on(RotateSecretCommand).rejects(serviceError("ThrottlingException", 400));
    const sleeps: number[] = [];
    const r = new SecretsManagerRotator({
      client: new SecretsManagerClient({ region: "us-east-1" }),
      random: () => 0.999,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });

    await expect(r.rotate(ARN)).rejects.toBeInstanceOf(UpstreamUnavailableError);
    expect(sleeps).toEqual([199, 399, 799]);
  });

  it("gives up after maxAttempts calls with upstream_unavailable", async () => {
    secretsManager.on(RotateSecretCommand).rejects(serviceError("ThrottlingException", 400, "Rate exceeded"));
    const { rotator: r, sleeps } = rotator();

    const err = await rejection(r.rotate(ARN));

    expect(err).toBeInstanceOf(UpstreamUnavailableError);
    expect((err as UpstreamUnavailableError).code).toBe("upstream_unavailable");
    expect(err.message).toBe("Secrets Manager kept failing after 4 attempts; the secret was not rotated");
    expect(err.cause).toStrictEqual({
      name: "ThrottlingException",
      httpStatusCode: 400,
      requestId: "req-1",
      attempts: 4,
    });
    expect(secretsManager).toHaveReceivedCommandTimes(RotateSecretCommand, 4);
    expect(sleeps).toEqual([100, 200, 400]);
  });

  it("honours a configured maxAttempts", async () => {
    secretsManager.on(RotateSecretCommand).rejects(serviceError("InternalServiceError", 500));

    await expect(rotator({ maxAttempts: 2 }).rotator.rotate(ARN)).rejects.toBeInstanceOf(
      UpstreamUnavailableError,
    );
    expect(secretsManager).toHaveReceivedCommandTimes(RotateSecretCommand, 2);
  });

  it("maps ResourceNotFoundException to a not_found SecretNotFoundError naming the secret", async () => {
    secretsManager.on(RotateSecretCommand).rejects(
      new ResourceNotFoundException({
        $metadata: { httpStatusCode: 400 },
        message: "Secrets Manager can't find",
      }),
    );

    const err = await rejection(rotator().rotator.rotate(ARN));

    expect(err).toBeInstanceOf(SecretNotFoundError);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as SecretNotFoundError).code).toBe("not_found");
    expect(err.message).toBe(`secret ${ARN} does not exist; it was not rotated`);
    expect(secretsManager).toHaveReceivedCommandTimes(RotateSecretCommand, 1);
  });

  it.each([
    [
      "an InvalidRequestException that is not about a rotation in progress",
      invalidRequest("You tried to perform the operation on a secret that's currently marked deleted."),
    ],
    ["AccessDeniedException", serviceError("AccessDeniedException", 400, `not authorized on ${ARN}`)],
    ["LimitExceededException", new LimitExceededException({ $metadata: {}, message: "too many versions" })],
    ["a non-AWS error", new Error("something odd")],
  ])("maps %s to upstream_unavailable without retrying or echoing AWS's message", async (_what, error) => {
    secretsManager.on(RotateSecretCommand).rejects(error);

    const err = await rejection(rotator().rotator.rotate(ARN));

    expect(err).toBeInstanceOf(UpstreamUnavailableError);
    expect(err.message).toBe("Secrets Manager refused RotateSecret; the secret was not rotated");
    expect(err.message).not.toContain(error.message);
    expect(JSON.stringify(err.cause)).not.toContain(error.message);
    expect(secretsManager).toHaveReceivedCommandTimes(RotateSecretCommand, 1);
  });
});
