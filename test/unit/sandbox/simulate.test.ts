// biome-ignore-all lint/suspicious/noTemplateCurlyInString: IAM policy variables such as ${aws:PrincipalTag/jitv:tenant} are test data here, not template literals
import { describe, expect, it } from "vitest";
import { InvalidRequestError } from "../../../lib/domain/errors.js";
import { type SimulationInput, simulateTaskRequest } from "../../../lib/sandbox/simulate.js";

const ROLE_ARN = "arn:aws:iam::123456789012:role/jitv/reports-reader";

function policy(...statements: object[]): string {
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}

const ALLOW_ALL = policy({ Effect: "Allow", Action: "*", Resource: "*" });
const READ_ACME = policy({ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::data/acme/*" });

function revokedTasks(...taskIds: string[]): string {
  return policy({
    Sid: "JitvRevokedTasks",
    Effect: "Deny",
    Action: "*",
    Resource: "*",
    Condition: { StringEquals: { "aws:PrincipalTag/jitv:task": taskIds } },
  });
}

function input(overrides: Partial<SimulationInput> = {}): SimulationInput {
  const taskId = overrides.sessionName ?? "tsk_01";
  return {
    roleArn: ROLE_ARN,
    rolePolicies: [ALLOW_ALL],
    sessionPolicy: READ_ACME,
    sessionTags: [
      { Key: "jitv:task", Value: taskId },
      { Key: "jitv:agent", Value: "agent-a" },
      { Key: "jitv:template", Value: "reports-read" },
    ],
    sessionName: taskId,
    sourceIdentity: "agent-a",
    tokenIssueTime: "2025-06-01T12:00:00Z",
    action: "s3:GetObject",
    resource: "arn:aws:s3:::data/acme/q3.csv",
    ...overrides,
  };
}

describe("simulateTaskRequest", () => {
  it("allows what both the role policy and the session policy allow", async () => {
    await expect(simulateTaskRequest(input())).resolves.toEqual({
      allowed: true,
      decision: "Allowed",
      reason: "allowed by the role policy and the session policy",
    });
  });

  it("implicitly denies another tenant's prefix the session policy does not cover", async () => {
    await expect(
      simulateTaskRequest(input({ resource: "arn:aws:s3:::data/globex/q3.csv" })),
    ).resolves.toEqual({
      allowed: false,
      decision: "ImplicitlyDenied",
      reason: "not allowed by the task's session policy",
    });
  });

  it("implicitly denies what the session policy allows but the role policy does not", async () => {
    const roleReadsReportsOnly = policy({
      Effect: "Allow",
      Action: "s3:GetObject",
      Resource: "arn:aws:s3:::reports/*",
    });
    await expect(simulateTaskRequest(input({ rolePolicies: [roleReadsReportsOnly] }))).resolves.toEqual({
      allowed: false,
      decision: "ImplicitlyDenied",
      reason: "not allowed by the role policy",
    });
  });

  it("names both gates when neither allows", async () => {
    const result = await simulateTaskRequest(input({ action: "s3:PutObject", rolePolicies: [READ_ACME] }));
    expect(result).toEqual({
      allowed: false,
      decision: "ImplicitlyDenied",
      reason: "allowed by neither the role policy nor the task's session policy",
    });
  });

  it("explicitly denies a revoked task and keeps another task on the same role allowed", async () => {
    const revocationPolicy = revokedTasks("tsk_01", "tsk_07");
    await expect(simulateTaskRequest(input({ revocationPolicy }))).resolves.toEqual({
      allowed: false,
      decision: "ExplicitlyDenied",
      reason: "explicitly denied by the role's jitv-revoked-tasks policy (task revoked)",
    });
    await expect(
      simulateTaskRequest(input({ sessionName: "tsk_02", revocationPolicy })),
    ).resolves.toMatchObject({
      allowed: true,
      decision: "Allowed",
    });
  });

  it("explicitly denies sessions issued before a token-issue-time cutoff, not those issued after", async () => {
    const revocationPolicy = policy({
      Effect: "Deny",
      Action: "*",
      Resource: "*",
      Condition: { DateLessThan: { "aws:TokenIssueTime": "2025-06-01T12:00:00Z" } },
    });
    await expect(
      simulateTaskRequest(input({ revocationPolicy, tokenIssueTime: "2025-06-01T11:59:59Z" })),
    ).resolves.toEqual({
      allowed: false,
      decision: "ExplicitlyDenied",
      reason:
        "explicitly denied by the role's jitv-revoked-tasks policy (sessions issued before the cutoff are revoked)",
    });
    await expect(
      simulateTaskRequest(input({ revocationPolicy, tokenIssueTime: "2025-06-01T12:00:01.000+00:00" })),
    ).resolves.toMatchObject({ allowed: true, decision: "Allowed" });
  });

  it("names the statement of a session policy's own Deny", async () => {
    const sessionPolicy = policy(
      { Effect: "Allow", Action: "s3:*", Resource: "arn:aws:s3:::data/acme/*" },
      { Sid: "NoDelete", Effect: "Deny", Action: "s3:DeleteObject", Resource: "*" },
    );
    await expect(simulateTaskRequest(input({ sessionPolicy, action: "s3:DeleteObject" }))).resolves.toEqual({
      allowed: false,
      decision: "ExplicitlyDenied",
      reason: 'explicitly denied by the task\'s session policy (statement "NoDelete")',
    });
  });

  it("resolves ${aws:PrincipalTag/jitv:tenant} in the session policy from the session tags", async () => {
    const sessionPolicy = policy({
      Effect: "Allow",
      Action: "s3:GetObject",
      Resource: "arn:aws:s3:::data/${aws:PrincipalTag/jitv:tenant}/*",
    });
    const delegated = (resource: string) =>
      input({
        sessionPolicy,
        resource,
        sessionTags: [
          { Key: "jitv:task", Value: "tsk_01" },
          { Key: "jitv:tenant", Value: "acme" },
        ],
      });
    await expect(simulateTaskRequest(delegated("arn:aws:s3:::data/acme/q3.csv"))).resolves.toMatchObject({
      decision: "Allowed",
    });
    await expect(simulateTaskRequest(delegated("arn:aws:s3:::data/globex/q3.csv"))).resolves.toMatchObject({
      decision: "ImplicitlyDenied",
      reason: "not allowed by the task's session policy",
    });
  });

  it("evaluates the session as the assumed-role principal with its source identity and the request time", async () => {
    const sessionPolicy = policy({
      Effect: "Allow",
      Action: "s3:GetObject",
      Resource: "*",
      Condition: {
        ArnEquals: { "aws:PrincipalArn": ROLE_ARN },
        StringEquals: { "aws:SourceIdentity": "agent-a", "aws:PrincipalAccount": "123456789012" },
        DateLessThan: { "aws:CurrentTime": "2025-06-01T13:00:00Z" },
      },
    });
    const rolePolicies = [
      policy({
        Effect: "Allow",
        NotAction: "iam:*",
        Resource: "*",
        Condition: { StringEquals: { "aws:PrincipalType": "AssumedRole" } },
      }),
    ];
    const during = await simulateTaskRequest(input({ sessionPolicy, rolePolicies }), {
      now: new Date("2025-06-01T12:30:00Z"),
    });
    expect(during.decision).toBe("Allowed");
    const after = await simulateTaskRequest(input({ sessionPolicy, rolePolicies }), {
      now: new Date("2025-06-01T13:30:00Z"),
    });
    expect(after).toMatchObject({
      decision: "ImplicitlyDenied",
      reason: "not allowed by the task's session policy",
    });
    const otherAgent = await simulateTaskRequest(
      input({ sessionPolicy, rolePolicies, sourceIdentity: "agent-b" }),
      {
        now: new Date("2025-06-01T12:30:00Z"),
      },
    );
    expect(otherAgent.decision).toBe("ImplicitlyDenied");
  });

  it("refuses an unknown action with InvalidRequestError", async () => {
    const attempt = simulateTaskRequest(input({ action: "s3:GetObjectt" }));
    await expect(attempt).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(attempt).rejects.toThrow('unknown action "s3:GetObjectt"');
  });

  it("refuses an unknown service, a resource the action does not act on, and a wildcard resource", async () => {
    await expect(simulateTaskRequest(input({ action: "nosuchservice:GetThing" }))).rejects.toThrow(
      InvalidRequestError,
    );
    await expect(
      simulateTaskRequest(input({ resource: "arn:aws:sqs:us-east-1:123456789012:queue" })),
    ).rejects.toThrow(
      '"arn:aws:sqs:us-east-1:123456789012:queue" is not a resource that s3:GetObject acts on',
    );
    await expect(simulateTaskRequest(input({ resource: "arn:aws:s3:::data/acme/*" }))).rejects.toThrow(
      /is a pattern; name one resource ARN/,
    );
    await expect(
      simulateTaskRequest(input({ action: "s3:ListAllMyBuckets", resource: "arn:aws:s3:::data" })),
    ).rejects.toThrow('s3:ListAllMyBuckets does not act on a specific resource; use "*" as the resource');
  });

  it("refuses malformed policies, role ARNs and issue times with the problem named", async () => {
    await expect(simulateTaskRequest(input({ sessionPolicy: "{not json" }))).rejects.toThrow(
      "the task's session policy is not valid JSON",
    );
    await expect(
      simulateTaskRequest(input({ revocationPolicy: policy({ Effect: "Deny", Action: "*" }) })),
    ).rejects.toThrow(/^the role's jitv-revoked-tasks policy is not valid IAM: Statement/);
    await expect(
      simulateTaskRequest(input({ roleArn: "arn:aws:iam::123456789012:user/alice" })),
    ).rejects.toThrow(InvalidRequestError);
    await expect(simulateTaskRequest(input({ tokenIssueTime: "yesterday" }))).rejects.toThrow(
      'token issue time "yesterday" is not an RFC 3339 time',
    );
  });
});
