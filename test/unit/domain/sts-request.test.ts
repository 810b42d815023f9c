import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { InternalError, InvalidRequestError } from "../../../lib/domain/errors.js";
import type { AssumeRoleRequest, SessionTag } from "../../../lib/domain/sts.js";
import {
  assertStsLimits,
  assertTagLimits,
  buildAssumeRoleRequest,
  buildSessionTags,
  sanitiseSourceIdentity,
  sessionDurationSeconds,
} from "../../../lib/domain/sts-request.js";
import type { Task } from "../../../lib/domain/task.js";
import { parseTemplate, type TaskTemplate } from "../../../lib/domain/template.js";

const NOW = new Date("2025-06-01T12:00:00.000Z");
const STS_NAME = /^[\w+=,.@-]{2,64}$/;
const POLICY =
  '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}';

function template(overrides: Record<string, unknown> = {}): TaskTemplate {
  return parseTemplate({
    name: "reports-read",
    zone: "customer",
    roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
    sessionPolicy: {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::reports/{{tenant}}/*" }],
    },
    ...overrides,
  });
}

function task(overrides: Partial<Task> = {}): Task {
  return {
    taskId: "tsk_01J0000000000000000000000",
    status: "active",
    template: "reports-read",
    zone: "customer",
    roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
    agent: { issuer: "https://token.actions.githubusercontent.com", id: "repo:org/repo:ref:refs/heads/main" },
    parameters: {},
    sessionPolicy: POLICY,
    createdAt: NOW.toISOString(),
    expiresAt: new Date(NOW.getTime() + 3_600_000).toISOString(),
    issuedCount: 0,
    ...overrides,
  };
}

function request(overrides: Partial<AssumeRoleRequest> = {}): AssumeRoleRequest {
  return {
    roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
    roleSessionName: "tsk_01",
    sourceIdentity: "agent-a",
    policy: POLICY,
    tags: [{ Key: "jitv:task", Value: "tsk_01" }],
    durationSeconds: 900,
    ...overrides,
  };
}

describe("sanitiseSourceIdentity", () => {
  const HASHED = /-[0-9a-f]{16}$/;
  /** `-` and the first 16 hex characters of the SHA-256 of the original id. */
  const suffix = (id: string) => `-${createHash("sha256").update(id, "utf8").digest("hex").slice(0, 16)}`;

  it("passes an id STS already accepts unchanged", () => {
    for (const id of ["agent-a", "svc+bot=1,a.b@example.com_x-y", "ab", "a".repeat(64), "team-a"]) {
      expect(sanitiseSourceIdentity(id)).toBe(id);
    }
  });

  it("replaces characters STS does not accept with - and appends a hash of the original id", () => {
    expect(sanitiseSourceIdentity("repo:org/repo:ref:refs/heads/main")).toBe(
      `repo-org-repo-ref-refs-heads-main${suffix("repo:org/repo:ref:refs/heads/main")}`,
    );
    expect(sanitiseSourceIdentity("auth0|abc 123")).toBe(`auth0-abc-123${suffix("auth0|abc 123")}`);
    expect(sanitiseSourceIdentity("agent-é🙂")).toBe(`agent---${suffix("agent-é🙂")}`);
  });

  it("keeps ids distinct that differ only in replaced characters", () => {
    const ids = ["team:a", "team/a", "team|a", "team a", "team-a"];
    const sanitised = ids.map(sanitiseSourceIdentity);

    expect(new Set(sanitised).size).toBe(ids.length);
    expect(sanitised[0]).toMatch(/^team-a-[0-9a-f]{16}$/);
    expect(sanitised[1]).toMatch(/^team-a-[0-9a-f]{16}$/);
    expect(sanitised[4]).toBe("team-a");
  });

  it("never starts with aws:, whatever the case, and stays distinct from the prefixed id", () => {
    expect(sanitiseSourceIdentity("aws:x")).toBe(`agent-aws-x${suffix("aws:x")}`);
    expect(sanitiseSourceIdentity("AWS:x")).toBe(`agent-AWS-x${suffix("AWS:x")}`);
    expect(sanitiseSourceIdentity("aws:x")).not.toBe(sanitiseSourceIdentity("agent-aws:x"));
  });

  it("lengthens a 1-character id with the hash, so it stays distinct from a 2-character one", () => {
    expect(sanitiseSourceIdentity("a")).toBe(`a${suffix("a")}`);
    expect(sanitiseSourceIdentity("")).toBe(suffix(""));
    expect(sanitiseSourceIdentity("a")).not.toBe(sanitiseSourceIdentity("a-"));
  });

  it("hashes a valid id that ends like a hashed one, so no id can pose as another's sanitised form", () => {
    const posing = sanitiseSourceIdentity("team:a");

    expect(posing).toMatch(HASHED);
    expect(sanitiseSourceIdentity(posing)).toBe(`${posing}${suffix(posing)}`);
    expect(sanitiseSourceIdentity(posing)).not.toBe(posing);
    expect(sanitiseSourceIdentity("build-0123456789abcdef")).not.toBe("build-0123456789abcdef");
    // Only exactly 16 lowercase hex characters after the last - look hashed.
    expect(sanitiseSourceIdentity("build-0123456789ABCDEF")).toBe("build-0123456789ABCDEF");
    expect(sanitiseSourceIdentity("build-0123456789abcde")).toBe("build-0123456789abcde");
  });

  it("shortens long ids to a readable prefix and a hash so distinct ids stay distinct", () => {
    const a = sanitiseSourceIdentity(`${"x".repeat(199)}a`);
    const b = sanitiseSourceIdentity(`${"x".repeat(199)}b`);

    expect(a).not.toBe(b);
    for (const value of [a, b]) {
      expect(value).toHaveLength(64);
      expect(value).toMatch(/^x{47}-[0-9a-f]{16}$/);
    }
    expect(a).toBe(`${"x".repeat(47)}${suffix(`${"x".repeat(199)}a`)}`);
    expect(sanitiseSourceIdentity(`${"x".repeat(199)}a`)).toBe(a);
    expect(sanitiseSourceIdentity("a".repeat(65))).toMatch(/^a{47}-[0-9a-f]{16}$/);
  });

  it("keeps long ids distinct even when they differ only in replaced characters", () => {
    const a = sanitiseSourceIdentity(`repo:${"o".repeat(100)}/a`);
    const b = sanitiseSourceIdentity(`repo:${"o".repeat(100)}:a`);

    expect(a).not.toBe(b);
    expect(a.length).toBeLessThanOrEqual(64);
    expect(b.length).toBeLessThanOrEqual(64);
  });

  it("always returns a valid SourceIdentity not starting with aws:, and distinct values for distinct ids", () => {
    const ids = [
      "",
      "a",
      "ab",
      ":",
      "::",
      "aws:",
      "AwS:x",
      "agent-aws-x",
      "é",
      "🙂🙂",
      "a b",
      "x".repeat(63),
      "x".repeat(64),
      "x".repeat(65),
      "x".repeat(300),
      `${"x".repeat(63)}:`,
      `${"x".repeat(64)}:`,
      `${":".repeat(64)}`,
      `${"é".repeat(100)}`,
      "team:a",
      "team/a",
      "team-a",
      "team-a-0123456789abcdef",
      "repo:org/repo:ref:refs/heads/main",
      "repo:org/repo:ref:refs/heads/main/",
    ];
    const sanitised = ids.map(sanitiseSourceIdentity);

    for (const value of sanitised) {
      expect(value).toMatch(STS_NAME);
      expect(value).not.toMatch(/^aws:/i);
      expect(() => assertStsLimits(request({ sourceIdentity: value }))).not.toThrow();
    }
    expect(new Set(sanitised).size).toBe(ids.length);
  });
});

describe("buildSessionTags", () => {
  it("tags a task with its id, agent and template", () => {
    expect(
      buildSessionTags({ task: "tsk_01", agent: "repo:org/repo:ref:refs/heads/main", template: "t" }),
    ).toEqual([
      { Key: "jitv:task", Value: "tsk_01" },
      { Key: "jitv:agent", Value: "repo:org/repo:ref:refs/heads/main" },
      { Key: "jitv:template", Value: "t" },
    ]);
  });

  it("adds the user and tenant of a delegated task", () => {
    expect(
      buildSessionTags({
        task: "tsk_01",
        agent: "agent-a",
        template: "t",
        user: "alice@example.com",
        tenant: "acme",
      }),
    ).toEqual([
      { Key: "jitv:task", Value: "tsk_01" },
      { Key: "jitv:agent", Value: "agent-a" },
      { Key: "jitv:template", Value: "t" },
      { Key: "jitv:user", Value: "alice@example.com" },
      { Key: "jitv:tenant", Value: "acme" },
    ]);
  });

  it("refuses a value STS cannot tag, naming the key and not the value", () => {
    expect(() =>
      buildSessionTags({
        task: "tsk_01",
        agent: "agent-a",
        template: "t",
        user: "auth0|secret",
        tenant: "acme",
      }),
    ).toThrow(
      new InvalidRequestError('session tag "jitv:user" value holds characters STS does not accept in tags'),
    );
  });

  it("refuses a value over 256 characters", () => {
    expect(() => buildSessionTags({ task: "tsk_01", agent: "a".repeat(257), template: "t" })).toThrow(
      new InvalidRequestError('session tag "jitv:agent" value is longer than 256 characters'),
    );
    expect(() => buildSessionTags({ task: "tsk_01", agent: "a".repeat(256), template: "t" })).not.toThrow();
  });
});

describe("assertTagLimits", () => {
  const tags = (n: number): SessionTag[] =>
    Array.from({ length: n }, (_, i) => ({ Key: `k${i}`, Value: "v" }));

  it("allows 50 tags and refuses 51", () => {
    expect(() => assertTagLimits(tags(50))).not.toThrow();
    expect(() => assertTagLimits(tags(51))).toThrow(InvalidRequestError);
  });

  it("refuses keys STS would refuse", () => {
    expect(() => assertTagLimits([{ Key: "k".repeat(128), Value: "v" }])).not.toThrow();
    expect(() => assertTagLimits([{ Key: "k".repeat(129), Value: "v" }])).toThrow(InvalidRequestError);
    expect(() => assertTagLimits([{ Key: "", Value: "v" }])).toThrow(InvalidRequestError);
    expect(() => assertTagLimits([{ Key: "aws:x", Value: "v" }])).toThrow(/reserved aws: prefix/);
    expect(() =>
      assertTagLimits([
        { Key: "jitv:task", Value: "a" },
        { Key: "JITV:Task", Value: "b" },
      ]),
    ).toThrow(/given twice/);
  });

  it("accepts letters, numbers and spaces of any script", () => {
    expect(() => assertTagLimits([{ Key: "jitv:tenant", Value: "Zürich 東京 _.:/=+-@ 42" }])).not.toThrow();
  });
});

describe("sessionDurationSeconds", () => {
  const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);

  it.each([
    ["300 s remaining (STS's minimum applies)", at(300), undefined, 900],
    ["2000 s remaining (the 900 s default credential limit)", at(2000), undefined, 900],
    ["2000 s remaining, credentialMaxSeconds 2400", at(2000), 2400, 2000],
    ["1999.2 s remaining (rounded up)", at(1999.2), 2400, 2000],
    ["10 h remaining (role chaining cap)", at(36_000), 3600, 3600],
    ["10 h remaining, credentialMaxSeconds 1200", at(36_000), 1200, 1200],
    ["2000 s remaining, credentialMaxSeconds 3600", at(2000), 3600, 2000],
    ["a task already past its deadline", at(-60), undefined, 900],
  ])("%s → %i", (_what, expiresAt, credentialMaxSeconds, expected) => {
    expect(
      sessionDurationSeconds({
        now: NOW,
        expiresAt,
        ...(credentialMaxSeconds === undefined ? {} : { credentialMaxSeconds }),
      }),
    ).toBe(expected);
  });

  it("refuses invalid dates rather than returning NaN", () => {
    expect(() => sessionDurationSeconds({ now: NOW, expiresAt: new Date("nope") })).toThrow(InternalError);
  });
});

describe("buildAssumeRoleRequest", () => {
  it("asks for the task's role, stored policy, session name, source identity, tags and duration", () => {
    expect(buildAssumeRoleRequest({ task: task(), template: template(), now: NOW })).toStrictEqual({
      roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
      roleSessionName: "tsk_01J0000000000000000000000",
      sourceIdentity: "repo-org-repo-ref-refs-heads-main-746a08af312cd7ed",
      policy: POLICY,
      tags: [
        { Key: "jitv:task", Value: "tsk_01J0000000000000000000000" },
        { Key: "jitv:agent", Value: "repo:org/repo:ref:refs/heads/main" },
        { Key: "jitv:template", Value: "reports-read" },
      ],
      // The template sets no credentialMaxSeconds: one credential lives 900 s, then the agent refreshes.
      durationSeconds: 900,
    });
  });

  it("tags a delegated task with the user and tenant and honours the template's credential limit", () => {
    const delegated = task({
      agent: { issuer: "https://issuer.example", id: "agent-a" },
      onBehalfOf: { issuer: "https://idp.example", user: "alice", tenant: "acme" },
      expiresAt: new Date(NOW.getTime() + 7_200_000).toISOString(),
    });
    const limited = template({ ttl: { defaultSeconds: 900, maxSeconds: 7200, credentialMaxSeconds: 1800 } });

    const built = buildAssumeRoleRequest({ task: delegated, template: limited, now: NOW });

    expect(built.tags).toEqual([
      { Key: "jitv:task", Value: "tsk_01J0000000000000000000000" },
      { Key: "jitv:agent", Value: "agent-a" },
      { Key: "jitv:template", Value: "reports-read" },
      { Key: "jitv:user", Value: "alice" },
      { Key: "jitv:tenant", Value: "acme" },
    ]);
    expect(built.sourceIdentity).toBe("agent-a");
    expect(built.durationSeconds).toBe(1800);
  });

  it("sends the policy stored with the task, not a fresh rendering of the template", () => {
    const stored = '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}';

    expect(
      buildAssumeRoleRequest({ task: task({ sessionPolicy: stored }), template: template(), now: NOW })
        .policy,
    ).toBe(stored);
  });

  it("refuses a template that is not the task's", () => {
    expect(() =>
      buildAssumeRoleRequest({ task: task(), template: template({ name: "other" }), now: NOW }),
    ).toThrow(InternalError);
  });
});

describe("assertStsLimits", () => {
  it("accepts a request within every limit", () => {
    expect(() => assertStsLimits(request())).not.toThrow();
  });

  it.each([
    ["a role session name of 1 character", { roleSessionName: "t" }, /role session name/],
    ["a role session name with /", { roleSessionName: "tsk/1" }, /role session name/],
    ["a role session name of 65 characters", { roleSessionName: "t".repeat(65) }, /role session name/],
    ["a source identity with :", { sourceIdentity: "aws:x" }, /source identity/],
    ["a duration of 899 s", { durationSeconds: 899 }, /credential duration/],
    ["a duration of 3601 s", { durationSeconds: 3601 }, /credential duration/],
    ["a fractional duration", { durationSeconds: 900.5 }, /credential duration/],
    ["a policy of 2049 characters", { policy: "x".repeat(2049) }, /2049 characters/],
    [
      "a policy with characters above U+00FF",
      { policy: POLICY.replace("*", "東") },
      /characters STS does not accept/,
    ],
    ["an empty policy", { policy: "" }, /session policy is empty/],
    ["a role ARN that is not an IAM role", { roleArn: "arn:aws:s3:::bucket" }, /roleArn/],
    [
      "51 tags",
      { tags: Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: "v" })) },
      /51 session tags/,
    ],
  ])("refuses %s", (_what, overrides: Partial<AssumeRoleRequest>, message) => {
    expect(() => assertStsLimits(request(overrides))).toThrow(InvalidRequestError);
    expect(() => assertStsLimits(request(overrides))).toThrow(message);
  });

  it("accepts the boundaries 900 s, 3600 s and a 2048-character policy", () => {
    expect(() => assertStsLimits(request({ durationSeconds: 3600 }))).not.toThrow();
    expect(() => assertStsLimits(request({ policy: "x".repeat(2048) }))).not.toThrow();
  });
});
