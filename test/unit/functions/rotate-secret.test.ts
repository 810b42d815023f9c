import {
  DescribeSecretCommand,
  GetRandomPasswordCommand,
  GetSecretValueCommand,
  InternalServiceError,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import type { Context } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { handler } from "../../../functions/rotate-secret.js";
import { RotationRefusedError } from "../../../lib/secrets/rotation-steps.js";

const secretsManager = mockClient(SecretsManagerClient);
const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-key-AbCdEf";
const CURRENT = "11111111-1111-4111-8111-111111111111";
const TOKEN = "22222222-2222-4222-8222-222222222222";
const VALUE = "n3w-v4lue-that-must-never-be-logged";
const ROTATION_TOKEN = "rotation-token-sensitive";

/** What Powertools adds to every line (and `injectLambdaContext` from the context). */
const POWERTOOLS_KEYS = new Set([
  "level",
  "message",
  "timestamp",
  "service",
  "sampling_rate",
  "xray_trace_id",
  "cold_start",
  "function_arn",
  "function_memory_size",
  "function_name",
  "function_request_id",
]);

const context = {
  functionName: "jitv-rotate-secret",
  functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:jitv-rotate-secret",
  memoryLimitInMB: "256",
  awsRequestId: "req-1",
  getRemainingTimeInMillis: () => 30_000,
} as unknown as Context;

// Powertools writes INFO to stdout and ERROR to stderr.
let stdout: MockInstance;
let stderr: MockInstance;

function chunks(): string[] {
  return [...stdout.mock.calls, ...stderr.mock.calls].map(([chunk]) => String(chunk));
}

/** Every JSON line the function logged. */
function logLines(): Record<string, unknown>[] {
  return chunks()
    .flatMap((text) => text.split("\n"))
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function logged(): string {
  return chunks().join("");
}

beforeEach(() => {
  secretsManager.reset();
  secretsManager.on(DescribeSecretCommand).resolves({
    ARN,
    RotationEnabled: true,
    VersionIdsToStages: { [CURRENT]: ["AWSCURRENT"], [TOKEN]: ["AWSPENDING"] },
  });
  stdout = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
});

afterEach(() => {
  stdout.mockRestore();
  stderr.mockRestore();
});

describe("rotate-secret handler", () => {
  it("runs createSecret and logs only the step, secret ARN, token and outcome", async () => {
    secretsManager
      .on(GetSecretValueCommand)
      .rejects(new ResourceNotFoundException({ $metadata: {}, message: "no such version" }));
    secretsManager.on(GetRandomPasswordCommand).resolves({ RandomPassword: VALUE });

    await handler(
      { SecretId: ARN, ClientRequestToken: TOKEN, Step: "createSecret", RotationToken: ROTATION_TOKEN },
      context,
    );

    expect(secretsManager).toHaveReceivedCommandWith(PutSecretValueCommand, {
      SecretId: ARN,
      ClientRequestToken: TOKEN,
      VersionStages: ["AWSPENDING"],
      RotationToken: ROTATION_TOKEN,
    });
    const done = logLines().find((line) => line.message === "rotation step done");
    expect(done).toMatchObject({ step: "createSecret", secretArn: ARN, token: TOKEN, outcome: "created" });
    const ownKeys = Object.keys(done ?? {}).filter((key) => !POWERTOOLS_KEYS.has(key));
    expect(ownKeys.sort()).toEqual(["outcome", "secretArn", "step", "token"]);
    expect(logged()).not.toContain(VALUE);
    expect(logged()).not.toContain(ROTATION_TOKEN);
  });

  it("runs finishSecret through the same core", async () => {
    await handler({ SecretId: ARN, ClientRequestToken: TOKEN, Step: "finishSecret" }, context);

    expect(secretsManager).toHaveReceivedCommandWith(UpdateSecretVersionStageCommand, {
      SecretId: ARN,
      VersionStage: "AWSCURRENT",
      MoveToVersionId: TOKEN,
      RemoveFromVersionId: CURRENT,
    });
  });

  it("logs a failed step by error name only and rethrows, so Secrets Manager retries it", async () => {
    secretsManager
      .on(GetSecretValueCommand)
      .rejects(new ResourceNotFoundException({ $metadata: {}, message: "no such version" }));
    secretsManager.on(GetRandomPasswordCommand).resolves({ RandomPassword: VALUE });
    const failure = new InternalServiceError({ $metadata: { httpStatusCode: 500 }, message: "try again" });
    secretsManager.on(PutSecretValueCommand).rejects(failure);

    await expect(
      handler({ SecretId: ARN, ClientRequestToken: TOKEN, Step: "createSecret" }, context),
    ).rejects.toBe(failure);

    const failed = logLines().find((line) => line.message === "rotation step failed");
    expect(failed).toMatchObject({
      level: "ERROR",
      step: "createSecret",
      secretArn: ARN,
      token: TOKEN,
      error: "InternalServiceError",
    });
    // The value was generated before the write failed; it must not reach the logs.
    expect(logged()).not.toContain(VALUE);
  });

  it("refuses a malformed event before calling Secrets Manager", async () => {
    await expect(handler({ SecretId: ARN, Step: "createSecret" }, context)).rejects.toBeInstanceOf(
      RotationRefusedError,
    );
    expect(secretsManager.calls()).toHaveLength(0);
  });
});
