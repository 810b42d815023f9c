import {
  AssumeRoleCommand,
  MalformedPolicyDocumentException,
  PackedPolicyTooLargeException,
  RegionDisabledException,
  STSClient,
  STSServiceException,
} from "@aws-sdk/client-sts";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { StsBroker } from "../../../lib/credentials/sts-broker.js";
import {
  ForbiddenError,
  InvalidRequestError,
  type JitvError,
  UpstreamUnavailableError,
} from "../../../lib/domain/errors.js";
import type { AssumeRoleRequest } from "../../../lib/domain/sts.js";
import { buildAssumeRoleRequest } from "../../../lib/domain/sts-request.js";
import type { Task } from "../../../lib/domain/task.js";
import { parseTemplate } from "../../../lib/domain/template.js";

const sts = mockClient(STSClient);
const NOW = new Date("2025-06-01T12:00:00.000Z");
const ROLE_ARN = "arn:aws:iam::123456789012:role/jitv/reports-reader";
const POLICY =
  '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::reports/acme/q3/*"]}]}';
const CREDENTIALS = {
  AccessKeyId: "ASIAEXAMPLEEXAMPLE00",
  SecretAccessKey: "secret-access-key-example",
  SessionToken: "session-token-example",
  Expiration: new Date("2025-06-01T12:30:00.000Z"),
};

const template = parseTemplate({
  name: "reports-read",
  zone: "customer",
  roleArn: ROLE_ARN,
  sessionPolicy: {
    Version: "2012-10-17",
    Statement: [
      { Effect: "Allow", Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::reports/{{tenant}}/*"] },
    ],
  },
  // Above the 900 s default, so the task's remaining 1800 s decides the duration.
  ttl: { defaultSeconds: 900, maxSeconds: 3600, credentialMaxSeconds: 3600 },
});

function task(overrides: Partial<Task> = {}): Task {
  return {
    taskId: "tsk_01",
    status: "active",
    template: "reports-read",
    zone: "customer",
    roleArn: ROLE_ARN,
    agent: { issuer: "https://issuer.example", id: "repo:org/repo:ref:refs/heads/main" },
    parameters: { prefix: "q3" },
    sessionPolicy: POLICY,
    createdAt: NOW.toISOString(),
    expiresAt: new Date(NOW.getTime() + 1_800_000).toISOString(),
    issuedCount: 0,
    ...overrides,
  };
}

function requestFor(overrides: Partial<Task> = {}): AssumeRoleRequest {
  return buildAssumeRoleRequest({ task: task(overrides), template, now: NOW });
}

function broker(options: { maxAttempts?: number } = {}) {
  const sleeps: number[] = [];
  const instance = new StsBroker({
    client: new STSClient({ region: "us-east-1", maxAttempts: 1 }),
    ...options,
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
  return { broker: instance, sleeps };
}

function serviceError(name: string, httpStatusCode: number, message = "failure") {
  return new STSServiceException({
    name,
    $fault: httpStatusCode >= 500 ? "server" : "client",
    $metadata: { httpStatusCode, requestId: "req-1" },
    message,
  });
}

async function rejection(promise: Promise<unknown>): Promise<JitvError> {
  try {
    await promise;
  } catch (err) {
    return err as JitvError;
  }
  throw new Error("expected a rejection");
}

beforeEach(() => {
  sts.reset();
});

describe("StsBroker", () => {
  it("sends exactly the AssumeRole input of a delegated task and returns the credentials", async () => {
    sts.on(AssumeRoleCommand).resolves({ Credentials: CREDENTIALS });
    const delegated = { onBehalfOf: { issuer: "https://idp.example", user: "alice", tenant: "acme" } };

    const credentials = await broker().broker.assumeRole(requestFor(delegated));

    const expected = {
      RoleArn: ROLE_ARN,
      RoleSessionName: "tsk_01",
      SourceIdentity: "repo-org-repo-ref-refs-heads-main-746a08af312cd7ed",
      Policy: POLICY,
      Tags: [
        { Key: "jitv:task", Value: "tsk_01" },
        { Key: "jitv:agent", Value: "repo:org/repo:ref:refs/heads/main" },
        { Key: "jitv:template", Value: "reports-read" },
        { Key: "jitv:user", Value: "alice" },
        { Key: "jitv:tenant", Value: "acme" },
      ],
      DurationSeconds: 1800,
    };
    expect(sts).toHaveReceivedCommandExactlyOnceWith(AssumeRoleCommand, expected);
    // The matcher is a partial match; the whole input must be exactly this, with nothing else.
    expect(sts.commandCalls(AssumeRoleCommand)[0]?.args[0].input).toStrictEqual(expected);
    expect(credentials).toStrictEqual({
      AccessKeyId: "ASIAEXAMPLEEXAMPLE00",
      SecretAccessKey: "secret-access-key-example",
      SessionToken: "session-token-example",
      Expiration: "2025-06-01T12:30:00.000Z",
    });
  });

  it("sends no user or tenant tags for a task that is not delegated", async () => {
    sts.on(AssumeRoleCommand).resolves({ Credentials: CREDENTIALS });

    await broker().broker.assumeRole(
      requestFor({ agent: { issuer: "https://issuer.example", id: "agent-a" } }),
    );

    const expected = {
      RoleArn: ROLE_ARN,
      RoleSessionName: "tsk_01",
      SourceIdentity: "agent-a",
      Policy: POLICY,
      Tags: [
        { Key: "jitv:task", Value: "tsk_01" },
        { Key: "jitv:agent", Value: "agent-a" },
        { Key: "jitv:template", Value: "reports-read" },
      ],
      DurationSeconds: 1800,
    };
    expect(sts).toReceiveCommandWith(AssumeRoleCommand, expected);
    expect(sts.commandCalls(AssumeRoleCommand)[0]?.args[0].input).toStrictEqual(expected);
  });

  it.each([
    ["Throttling", serviceError("Throttling", 400, "Rate exceeded")],
    ["ThrottlingException", serviceError("ThrottlingException", 400)],
    ["RequestLimitExceeded", serviceError("RequestLimitExceeded", 400)],
    ["TooManyRequestsException", serviceError("TooManyRequestsException", 429)],
    ["an HTTP 503", serviceError("ServiceUnavailable", 503)],
    ["an HTTP 500", serviceError("InternalFailure", 500)],
    ["ECONNRESET", Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })],
  ])("retries %s with backoff, then succeeds", async (_what, error) => {
    sts.on(AssumeRoleCommand).rejectsOnce(error).rejectsOnce(error).resolves({ Credentials: CREDENTIALS });
    const { broker: b, sleeps } = broker();

    const credentials = await b.assumeRole(requestFor());

    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 3);
    expect(credentials.AccessKeyId).toBe("ASIAEXAMPLEEXAMPLE00");
    // Full jitter with random() = 0.5: half of 100 ms, then half of 200 ms.
    expect(sleeps).toEqual([50, 100]);
  });

  it("gives up after maxAttempts calls with upstream_unavailable", async () => {
    sts.on(AssumeRoleCommand).rejects(serviceError("Throttling", 400, "Rate exceeded"));
    const { broker: b, sleeps } = broker();

    const err = await rejection(b.assumeRole(requestFor()));

    expect(err).toBeInstanceOf(UpstreamUnavailableError);
    expect(err.code).toBe("upstream_unavailable");
    expect(err.message).toBe("STS kept failing after 4 attempts; nothing was issued");
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 4);
    expect(sleeps).toEqual([50, 100, 200]);
  });

  it("honours a configured maxAttempts", async () => {
    sts.on(AssumeRoleCommand).rejects(serviceError("Throttling", 400));

    await expect(broker({ maxAttempts: 2 }).broker.assumeRole(requestFor())).rejects.toBeInstanceOf(
      UpstreamUnavailableError,
    );
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 2);
  });

  it.each([
    [
      "PackedPolicyTooLarge",
      new PackedPolicyTooLargeException({ $metadata: { httpStatusCode: 400 }, message: "packed size 112%" }),
      new InvalidRequestError("session policy and tags exceed STS's packed size limit"),
    ],
    [
      "MalformedPolicyDocument",
      new MalformedPolicyDocumentException({ $metadata: { httpStatusCode: 400 }, message: "bad" }),
      new InvalidRequestError("STS refused the rendered session policy as malformed"),
    ],
    [
      "AccessDenied",
      serviceError(
        "AccessDenied",
        403,
        `User: arn:aws:sts::111111111111:assumed-role/jitv-vend/fn is not authorized to perform: sts:AssumeRole on resource: ${ROLE_ARN}`,
      ),
      new ForbiddenError("the target role does not trust jitv for this session"),
    ],
    [
      "AccessDeniedException",
      serviceError("AccessDeniedException", 403),
      new ForbiddenError("the target role does not trust jitv for this session"),
    ],
    [
      "RegionDisabledException",
      new RegionDisabledException({ $metadata: { httpStatusCode: 403 }, message: "region disabled" }),
      new UpstreamUnavailableError("STS is not activated in this region; nothing was issued"),
    ],
    [
      "an unknown error",
      serviceError("SomethingNew", 400),
      new UpstreamUnavailableError("STS AssumeRole failed; nothing was issued"),
    ],
  ])("maps %s without retrying or echoing STS's message", async (_what, error, expected) => {
    sts.on(AssumeRoleCommand).rejects(error);

    const err = await rejection(broker().broker.assumeRole(requestFor()));

    expect(err).toBeInstanceOf(expected.constructor);
    expect(err.code).toBe(expected.code);
    expect(err.message).toBe(expected.message);
    expect(err.message).not.toContain("arn:");
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
  });

  it("keeps only the error name, status and request id as the cause", async () => {
    sts.on(AssumeRoleCommand).rejects(serviceError("AccessDenied", 403, `denied on ${ROLE_ARN}`));

    const err = await rejection(broker().broker.assumeRole(requestFor()));

    expect(err.cause).toStrictEqual({
      name: "AccessDenied",
      httpStatusCode: 403,
      requestId: "req-1",
      attempts: 1,
    });
  });

  it("treats a response without complete credentials as upstream_unavailable", async () => {
    sts.on(AssumeRoleCommand).resolves({ Credentials: { ...CREDENTIALS, SessionToken: undefined } });

    const err = await rejection(broker().broker.assumeRole(requestFor()));

    expect(err).toBeInstanceOf(UpstreamUnavailableError);
    expect(err.message).not.toContain(CREDENTIALS.SecretAccessKey);
  });

  it.each([
    ["a policy over 2048 characters", { policy: `{"x":"${"a".repeat(2048)}"}` }],
    ["a duration over one hour", { durationSeconds: 3601 }],
    ["an invalid session name", { roleSessionName: "tsk/1" }],
    ["a tag value STS would refuse", { tags: [{ Key: "jitv:user", Value: "auth0|alice" }] }],
  ])("refuses %s before any call to STS", async (_what, overrides: Partial<AssumeRoleRequest>) => {
    sts.on(AssumeRoleCommand).resolves({ Credentials: CREDENTIALS });

    const err = await rejection(broker().broker.assumeRole({ ...requestFor(), ...overrides }));

    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(sts).not.toHaveReceivedAnyCommand();
    expect(sts.calls()).toHaveLength(0);
  });
});
