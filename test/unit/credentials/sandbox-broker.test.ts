import { beforeEach, describe, expect, it } from "vitest";
import {
  parseSandboxSessionToken,
  SANDBOX_ACCESS_KEY_PREFIX,
  SandboxBroker,
} from "../../../lib/credentials/sandbox-broker.js";
import { InvalidRequestError } from "../../../lib/domain/errors.js";
import type { AssumeRoleRequest } from "../../../lib/domain/sts.js";

const NOW = new Date("2025-06-01T12:00:00.000Z");

function request(overrides: Partial<AssumeRoleRequest> = {}): AssumeRoleRequest {
  return {
    roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
    roleSessionName: "tsk_01",
    sourceIdentity: "agent-a",
    policy:
      '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}',
    tags: [
      { Key: "jitv:task", Value: "tsk_01" },
      { Key: "jitv:agent", Value: "agent-a" },
      { Key: "jitv:template", Value: "reports-read" },
    ],
    durationSeconds: 1200,
    ...overrides,
  };
}

describe("SandboxBroker", () => {
  let broker: SandboxBroker;

  beforeEach(() => {
    broker = new SandboxBroker({ now: () => NOW });
  });

  it("records exactly the request it would have sent to STS", async () => {
    await broker.assumeRole(request());

    expect(broker.requests).toStrictEqual([request()]);
    expect(broker.lastRequestFor("tsk_01")).toStrictEqual(request());
  });

  it("finds the latest request of a session and nothing for an unknown one", async () => {
    await broker.assumeRole(request());
    await broker.assumeRole(request({ roleSessionName: "tsk_02" }));
    await broker.assumeRole(request({ durationSeconds: 900 }));

    expect(broker.requests).toHaveLength(3);
    expect(broker.lastRequestFor("tsk_01")?.durationSeconds).toBe(900);
    expect(broker.lastRequestFor("tsk_99")).toBeUndefined();
  });

  it("returns credentials that are unmistakably not AWS ones", async () => {
    const credentials = await broker.assumeRole(request());

    expect(SANDBOX_ACCESS_KEY_PREFIX).toBe("JITVSANDBOX");
    expect(credentials.AccessKeyId).toMatch(/^JITVSANDBOX[A-Z0-9]{9}$/);
    expect(credentials.SecretAccessKey).toMatch(/^jitv-sandbox-not-aws-[\w-]{32}$/);
    expect(credentials.SessionToken.startsWith("jitv-sandbox-session:")).toBe(true);
    expect(credentials.Expiration).toBe("2025-06-01T12:20:00.000Z");
  });

  it("puts the task id and expiration in the session token", async () => {
    const credentials = await broker.assumeRole(request());

    expect(parseSandboxSessionToken(credentials.SessionToken)).toStrictEqual({
      taskId: "tsk_01",
      expiration: "2025-06-01T12:20:00.000Z",
    });
    expect(parseSandboxSessionToken("FwoGZXIvYXdzEXAMPLE")).toBeUndefined();
    expect(parseSandboxSessionToken("jitv-sandbox-session:not-json")).toBeUndefined();
  });

  it("issues fresh keys for every call", async () => {
    const first = await broker.assumeRole(request());
    const second = await broker.assumeRole(request());

    expect(second.AccessKeyId).not.toBe(first.AccessKeyId);
    expect(second.SecretAccessKey).not.toBe(first.SecretAccessKey);
  });

  it.each([
    ["a policy over 2048 characters", { policy: `{"x":"${"a".repeat(2048)}"}` }],
    ["a duration under 900 s", { durationSeconds: 600 }],
    ["a source identity STS would refuse", { sourceIdentity: "repo:org/repo" }],
    ["a tag value STS would refuse", { tags: [{ Key: "jitv:user", Value: 'a"b' }] }],
  ])("refuses %s and records nothing", async (_what, overrides: Partial<AssumeRoleRequest>) => {
    await expect(broker.assumeRole(request(overrides))).rejects.toBeInstanceOf(InvalidRequestError);
    expect(broker.requests).toHaveLength(0);
  });
});
