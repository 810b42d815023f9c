import {
  CreatePolicyVersionCommand,
  DeletePolicyVersionCommand,
  DeleteRolePolicyCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetRolePolicyCommand,
  IAMClient,
  IAMServiceException,
  ListAttachedRolePoliciesCommand,
  ListPolicyVersionsCommand,
  ListRolePoliciesCommand,
  MalformedPolicyDocumentException,
  NoSuchEntityException,
  PutRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { InternalError, type JitvError, UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import { IamRolePolicyWriter, roleNameOf } from "../../../lib/revocation/iam-role-policy-writer.js";
import { renderRevocationPolicy } from "../../../lib/revocation/policy.js";
import {
  REVOCATION_POLICY_NAME,
  RoleNotFoundError,
  RolePolicyLimitError,
} from "../../../lib/revocation/revocation-store.js";

const iam = mockClient(IAMClient);
const ROLE_ARN = "arn:aws:iam::123456789012:role/jitv/team/reader";
const DOCUMENT = renderRevocationPolicy({ taskIds: ["tsk_b", "tsk_a"] }) ?? "";

function writer(options: { maxAttempts?: number } = {}) {
  const sleeps: number[] = [];
  const instance = new IamRolePolicyWriter({
    client: new IAMClient({ region: "us-east-1", maxAttempts: 1 }),
    baseDelayMs: 100,
    ...options,
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
  return { writer: instance, sleeps };
}

function serviceError(name: string, httpStatusCode: number, message = "failure") {
  return new IAMServiceException({
    name,
    $fault: httpStatusCode >= 500 ? "server" : "client",
    $metadata: { httpStatusCode, requestId: "req-1" },
    message,
  });
}

const noSuchEntity = () =>
  new NoSuchEntityException({
    $metadata: { httpStatusCode: 404 },
    message: `The role policy with name ${REVOCATION_POLICY_NAME} cannot be found.`,
  });

async function rejection(promise: Promise<unknown>): Promise<JitvError> {
  try {
    await promise;
  } catch (err) {
    return err as JitvError;
  }
  throw new Error("expected a rejection");
}

beforeEach(() => {
  iam.reset();
});

describe("roleNameOf", () => {
  it.each([
    ["arn:aws:iam::123456789012:role/jitv/team/reader", "reader"],
    ["arn:aws:iam::123456789012:role/reader", "reader"],
    ["arn:aws-us-gov:iam::123456789012:role/a/b=c,d.e@f-g_h+i", "b=c,d.e@f-g_h+i"],
  ])("takes the role name of %s from its last path segment", (arn, name) => {
    expect(roleNameOf(arn)).toBe(name);
  });

  it.each([
    "arn:aws:iam::123456789012:user/reader",
    "arn:aws:sts::123456789012:assumed-role/reader/tsk_1",
    "reader",
    "arn:aws:iam::123456789012:role/",
  ])("refuses %s without echoing it", (arn) => {
    expect(() => roleNameOf(arn)).toThrow(new InternalError("not an IAM role ARN"));
  });
});

describe("IamRolePolicyWriter", () => {
  it("puts exactly the role name, policy name and rendered document", async () => {
    iam.on(PutRolePolicyCommand).resolves({});

    await writer().writer.put(ROLE_ARN, REVOCATION_POLICY_NAME, DOCUMENT);

    const expected = { RoleName: "reader", PolicyName: "jitv-revoked-tasks", PolicyDocument: DOCUMENT };
    expect(iam).toHaveReceivedCommandExactlyOnceWith(PutRolePolicyCommand, expected);
    expect(iam.commandCalls(PutRolePolicyCommand)[0]?.args[0].input).toStrictEqual(expected);
    expect(expected.PolicyDocument).toBe(
      '{"Version":"2012-10-17","Statement":[{"Sid":"JitvRevokedTasks","Effect":"Deny","Action":"*",' +
        '"Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/jitv:task":["tsk_a","tsk_b"]}}}]}',
    );
  });

  it("URL-decodes the document GetRolePolicy returns", async () => {
    iam.on(GetRolePolicyCommand, { RoleName: "reader", PolicyName: REVOCATION_POLICY_NAME }).resolves({
      RoleName: "reader",
      PolicyName: REVOCATION_POLICY_NAME,
      PolicyDocument: encodeURIComponent(DOCUMENT),
    });

    const document = await writer().writer.get(ROLE_ARN, REVOCATION_POLICY_NAME);

    expect(document).toBe(DOCUMENT);
    expect(iam.commandCalls(GetRolePolicyCommand)[0]?.args[0].input).toStrictEqual({
      RoleName: "reader",
      PolicyName: REVOCATION_POLICY_NAME,
    });
  });

  it("returns undefined for a policy IAM does not have", async () => {
    iam.on(GetRolePolicyCommand).rejects(noSuchEntity());

    await expect(writer().writer.get(ROLE_ARN, REVOCATION_POLICY_NAME)).resolves.toBeUndefined();
    expect(iam).toHaveReceivedCommandTimes(GetRolePolicyCommand, 1);
  });

  it("deletes exactly the named policy, and a missing policy is fine", async () => {
    iam.on(DeleteRolePolicyCommand).resolvesOnce({}).rejectsOnce(noSuchEntity());
    const { writer: w } = writer();

    await w.delete(ROLE_ARN, REVOCATION_POLICY_NAME);
    await w.delete(ROLE_ARN, REVOCATION_POLICY_NAME);

    expect(iam).toHaveReceivedCommandTimes(DeleteRolePolicyCommand, 2);
    expect(iam.commandCalls(DeleteRolePolicyCommand)[0]?.args[0].input).toStrictEqual({
      RoleName: "reader",
      PolicyName: REVOCATION_POLICY_NAME,
    });
  });

  it("reports a missing role on put as upstream_unavailable, naming only the role", async () => {
    iam.on(PutRolePolicyCommand).rejects(
      new NoSuchEntityException({
        $metadata: { httpStatusCode: 404 },
        message: `Role ${ROLE_ARN} not found`,
      }),
    );

    const err = await rejection(writer().writer.put(ROLE_ARN, REVOCATION_POLICY_NAME, DOCUMENT));

    expect(err).toBeInstanceOf(UpstreamUnavailableError);
    expect(err.message).toBe("IAM role reader does not exist");
  });

  it.each([
    ["Throttling", serviceError("Throttling", 400, "Rate exceeded")],
    ["ThrottlingException", serviceError("ThrottlingException", 400)],
    ["ConcurrentModification", serviceError("ConcurrentModificationException", 409)],
    ["an HTTP 500", serviceError("ServiceFailureException", 500)],
    ["an HTTP 503", serviceError("ServiceUnavailable", 503)],
    ["ECONNRESET", Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })],
  ])("retries %s with jittered backoff, then succeeds", async (_what, error) => {
    iam.on(PutRolePolicyCommand).rejectsOnce(error).rejectsOnce(error).resolves({});
    const { writer: w, sleeps } = writer();

    await w.put(ROLE_ARN, REVOCATION_POLICY_NAME, DOCUMENT);

    expect(iam).toHaveReceivedCommandTimes(PutRolePolicyCommand, 3);
    // Full jitter with random() = 0.5: half of 100 ms, then half of 200 ms.
    expect(sleeps).toEqual([50, 100]);
  });

  it("gives up after maxAttempts with upstream_unavailable", async () => {
    iam.on(PutRolePolicyCommand).rejects(serviceError("Throttling", 400, "Rate exceeded"));
    const { writer: w, sleeps } = writer({ maxAttempts: 3 });

    const err = await rejection(w.put(ROLE_ARN, REVOCATION_POLICY_NAME, DOCUMENT));

    expect(err).toBeInstanceOf(UpstreamUnavailableError);
    expect(err.message).toBe("IAM PutRolePolicy on role reader kept failing after 3 attempts");
    expect(iam).toHaveReceivedCommandTimes(PutRolePolicyCommand, 3);
    expect(sleeps).toEqual([50, 100]);
  });

  it.each([
    [
      "MalformedPolicyDocument",
      new MalformedPolicyDocumentException({
        $metadata: { httpStatusCode: 400 },
        message: `bad ${DOCUMENT}`,
      }),
      "IAM refused the policy document for role reader as malformed",
    ],
    [
      "LimitExceeded",
      serviceError("LimitExceededException", 409, "Maximum policy size of 10240 bytes exceeded"),
      "IAM inline policy limits of role reader are exceeded",
    ],
    [
      "AccessDenied",
      serviceError(
        "AccessDenied",
        403,
        `User: arn:aws:sts::111111111111:assumed-role/jitv/fn is not authorized to perform: iam:PutRolePolicy on resource: ${ROLE_ARN}`,
      ),
      "jitv may not call IAM PutRolePolicy on role reader",
    ],
    [
      "an unknown error",
      serviceError("SomethingNew", 400, ROLE_ARN),
      "IAM PutRolePolicy on role reader failed",
    ],
  ])(
    "maps %s to upstream_unavailable without retrying or echoing the ARN or document",
    async (_what, error, message) => {
      iam.on(PutRolePolicyCommand).rejects(error);

      const err = await rejection(writer().writer.put(ROLE_ARN, REVOCATION_POLICY_NAME, DOCUMENT));

      expect(err).toBeInstanceOf(UpstreamUnavailableError);
      expect(err.code).toBe("upstream_unavailable");
      expect(err.message).toBe(message);
      expect(err.message).not.toContain("arn:");
      expect(err.message).not.toContain("tsk_a");
      expect(iam).toHaveReceivedCommandTimes(PutRolePolicyCommand, 1);
    },
  );

  it("keeps only the error name, operation, status and request id as the cause", async () => {
    iam.on(DeleteRolePolicyCommand).rejects(serviceError("AccessDenied", 403, `denied on ${ROLE_ARN}`));

    const err = await rejection(writer().writer.delete(ROLE_ARN, REVOCATION_POLICY_NAME));

    expect(err.cause).toStrictEqual({
      name: "AccessDenied",
      operation: "DeleteRolePolicy",
      httpStatusCode: 403,
      requestId: "req-1",
      attempts: 1,
    });
  });

  it("refuses a value that is not a role ARN before calling IAM", async () => {
    await expect(
      writer().writer.put("arn:aws:iam::123456789012:user/bob", "p", DOCUMENT),
    ).rejects.toBeInstanceOf(InternalError);
    expect(iam.calls()).toHaveLength(0);
  });
});

describe("IamRolePolicyWriter at IAM's size quota", () => {
  beforeEach(() => iam.reset());

  it("measures what the role's other inline policies leave of the 10,240 characters, across pages", async () => {
    const own = '{ "Version": "2012-10-17", "Statement": [] }';
    iam
      .on(ListRolePoliciesCommand, { RoleName: "reader" })
      .resolvesOnce({ PolicyNames: ["a", REVOCATION_POLICY_NAME], IsTruncated: true, Marker: "m1" })
      .resolvesOnce({ PolicyNames: ["b"], IsTruncated: false })
      .on(GetRolePolicyCommand)
      .resolves({ PolicyDocument: encodeURIComponent(own) });
    const { writer: w } = writer();
    // {"Version":"2012-10-17","Statement":[]} is 39 characters without whitespace; two such policies.
    expect(await w.freeInlineChars(ROLE_ARN, REVOCATION_POLICY_NAME)).toBe(10_240 - 2 * 39);
    expect(iam).toHaveReceivedNthCommandWith(ListRolePoliciesCommand, 2, {
      RoleName: "reader",
      Marker: "m1",
    });
    expect(iam).toHaveReceivedCommandTimes(GetRolePolicyCommand, 2);
    expect(iam).not.toHaveReceivedCommandWith(GetRolePolicyCommand, { PolicyName: REVOCATION_POLICY_NAME });
  });

  it("tells LimitExceeded and a missing role apart from other failures", async () => {
    iam
      .on(PutRolePolicyCommand)
      .rejects(serviceError("LimitExceededException", 409, "Maximum policy size exceeded"));
    const { writer: w } = writer();
    expect(await rejection(w.put(ROLE_ARN, REVOCATION_POLICY_NAME, DOCUMENT))).toBeInstanceOf(
      RolePolicyLimitError,
    );
    iam.on(PutRolePolicyCommand).rejects(noSuchEntity());
    expect(await rejection(w.put(ROLE_ARN, REVOCATION_POLICY_NAME, DOCUMENT))).toBeInstanceOf(
      RoleNotFoundError,
    );
    iam.on(ListRolePoliciesCommand).rejects(noSuchEntity());
    expect(await rejection(w.freeInlineChars(ROLE_ARN, REVOCATION_POLICY_NAME))).toBeInstanceOf(
      RoleNotFoundError,
    );
  });
});

describe("IamRolePolicyWriter: revocation overflow policies", () => {
  beforeEach(() => iam.reset());
  const A = "arn:aws:iam::123456789012:policy/jitv/revocation/ReaderRevocationOverflow1";
  const B = "arn:aws:iam::123456789012:policy/jitv/revocation/ReaderRevocationOverflow2";

  it("finds the role's overflow policies by path, in name order", async () => {
    iam.on(ListAttachedRolePoliciesCommand).resolves({
      AttachedPolicies: [
        { PolicyName: "ReaderRevocationOverflow2", PolicyArn: B },
        { PolicyName: "ReaderRevocationOverflow1", PolicyArn: A },
      ],
      IsTruncated: false,
    });
    expect(await writer().writer.overflowPolicies(ROLE_ARN)).toEqual([A, B]);
    expect(iam).toHaveReceivedCommandWith(ListAttachedRolePoliciesCommand, {
      RoleName: "reader",
      PathPrefix: "/jitv/revocation/",
    });
  });

  it("writes a new default version, first deleting the oldest non-default one when IAM's five are used", async () => {
    const version = (n: number, isDefault = false) => ({
      VersionId: `v${n}`,
      IsDefaultVersion: isDefault,
      CreateDate: new Date(2026, 0, n),
    });
    iam
      .on(ListPolicyVersionsCommand)
      .resolves({ Versions: [version(5, true), version(3), version(2), version(4), version(6)] })
      .on(DeletePolicyVersionCommand)
      .resolves({})
      .on(CreatePolicyVersionCommand)
      .resolves({});
    await writer().writer.putOverflow(ROLE_ARN, A, DOCUMENT);
    expect(iam).toHaveReceivedCommandWith(DeletePolicyVersionCommand, { PolicyArn: A, VersionId: "v2" });
    expect(iam).toHaveReceivedCommandWith(CreatePolicyVersionCommand, {
      PolicyArn: A,
      PolicyDocument: DOCUMENT,
      SetAsDefault: true,
    });
    iam.reset();
    iam
      .on(ListPolicyVersionsCommand)
      .resolves({ Versions: [version(1, true)] })
      .on(CreatePolicyVersionCommand)
      .resolves({});
    await writer().writer.putOverflow(ROLE_ARN, A, DOCUMENT);
    expect(iam).not.toHaveReceivedCommand(DeletePolicyVersionCommand);
  });

  it("reads the default version's document back", async () => {
    iam
      .on(GetPolicyCommand, { PolicyArn: A })
      .resolves({ Policy: { DefaultVersionId: "v7" } })
      .on(GetPolicyVersionCommand, { PolicyArn: A, VersionId: "v7" })
      .resolves({ PolicyVersion: { Document: encodeURIComponent(DOCUMENT) } });
    expect(await writer().writer.getOverflow(ROLE_ARN, A)).toBe(DOCUMENT);
  });
});
