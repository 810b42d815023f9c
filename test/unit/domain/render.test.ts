// biome-ignore-all lint/suspicious/noTemplateCurlyInString: IAM policy variables such as ${aws:username} are test data here, not template literals
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ForbiddenError, InvalidRequestError } from "../../../lib/domain/errors.js";
import {
  assertPolicySize,
  assertSafeIdentityValue,
  lintTemplate,
  renderSessionPolicy,
  validateParameters,
} from "../../../lib/domain/render.js";
import { parseTemplate, type TaskTemplate } from "../../../lib/domain/template.js";

function template(overrides: Record<string, unknown> = {}): TaskTemplate {
  return parseTemplate({
    name: "reports-read",
    zone: "customer",
    roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
    sessionPolicy: {
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Action: ["s3:GetObject"],
          Resource: ["arn:aws:s3:::reports/{{tenant}}/{{params.prefix}}/*"],
        },
      ],
    },
    parameters: { prefix: { pattern: "^[a-z0-9-]{1,32}$" } },
    ...overrides,
  });
}

function policyWith(resources: string[], extra: Record<string, unknown> = {}) {
  return {
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: resources, ...extra }],
  };
}

const values = { task: "tsk_01", agent: "agent-a", user: "alice", tenant: "acme", params: { prefix: "q3" } };

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a throw");
}

describe("renderSessionPolicy", () => {
  it("substitutes every placeholder in string values and returns compact JSON", () => {
    const t = template({
      sessionPolicy: {
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Action: ["s3:GetObject", "s3:PutObject"],
            Resource: [
              "arn:aws:s3:::reports/{{tenant}}/{{user}}/{{params.prefix}}/*",
              "arn:aws:s3:::scratch/{{agent}}/{{task}}/*",
            ],
            Condition: { StringEquals: { "aws:PrincipalTag/jitv:tenant": "{{tenant}}" } },
          },
        ],
      },
    });

    expect(renderSessionPolicy(t, values)).toBe(
      JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          {
            Effect: "Allow",
            Action: ["s3:GetObject", "s3:PutObject"],
            Resource: ["arn:aws:s3:::reports/acme/alice/q3/*", "arn:aws:s3:::scratch/agent-a/tsk_01/*"],
            Condition: { StringEquals: { "aws:PrincipalTag/jitv:tenant": "acme" } },
          },
        ],
      }),
    );
  });

  it("leaves IAM's own ${aws:…} variables untouched", () => {
    const t = template({
      zone: "workforce",
      parameters: undefined,
      sessionPolicy: policyWith(["arn:aws:s3:::home/${aws:username}/{{agent}}/*"], {
        Condition: { StringEquals: { "s3:prefix": "${aws:PrincipalTag/jitv:task}" } },
      }),
    });

    const policy = JSON.parse(renderSessionPolicy(t, { task: "tsk_01", agent: "agent-a", params: {} }));

    expect(policy.Statement[0].Resource).toEqual(["arn:aws:s3:::home/${aws:username}/agent-a/*"]);
    expect(policy.Statement[0].Condition.StringEquals["s3:prefix"]).toBe("${aws:PrincipalTag/jitv:task}");
  });

  it.each([
    ["a wildcard", "*"],
    ["a path separator", "a/b"],
    ["an IAM policy variable", "${aws:username}"],
    ["JSON structure", '"}]}'],
    ["a line feed", "acme\n"],
    ["a question mark", "ten?ant"],
    ["an empty value", ""],
    ["a backslash", "a\\b"],
    ["a C1 control character", "acme\u0085"],
    ["DEL", "acme\u007f"],
    ["a line separator", "acme\u2028"],
    ["257 characters", "a".repeat(257)],
  ])("refuses a tenant claim holding %s, without echoing it", (_what, tenant) => {
    const err = thrown(() => renderSessionPolicy(template(), { ...values, tenant }));

    expect(err).toBeInstanceOf(ForbiddenError);
    expect(err.message).toMatch(/tenant claim/);
    if (tenant.length > 0) expect(err.message).not.toContain(tenant);
  });

  it("accepts a tenant claim of 256 safe characters", () => {
    const tenant = "t".repeat(256);
    const policy = JSON.parse(renderSessionPolicy(template(), { ...values, tenant }));

    expect(policy.Statement[0].Resource[0]).toBe(`arn:aws:s3:::reports/${tenant}/q3/*`);
  });

  it("refuses an unsafe user claim or agent id when used", () => {
    const t = template({ sessionPolicy: policyWith(["arn:aws:s3:::r/{{user}}/{{agent}}/*"]) });

    expect(() => renderSessionPolicy(t, { ...values, user: "al*ce" })).toThrow(
      new ForbiddenError("unsafe user claim"),
    );
    expect(() => renderSessionPolicy(t, { ...values, agent: "repo:org/repo" })).toThrow(
      new ForbiddenError("unsafe agent id"),
    );
  });

  it("checks a claim only when its placeholder is used", () => {
    const t = template({ sessionPolicy: policyWith(["arn:aws:s3:::r/{{params.prefix}}/*"]) });

    expect(
      renderSessionPolicy(t, { ...values, agent: "repo:org/repo:ref:refs/heads/main", tenant: "*" }),
    ).toBe(JSON.stringify(policyWith(["arn:aws:s3:::r/q3/*"])));
  });

  it("refuses a used placeholder with no value", () => {
    const { tenant: _omitted, ...withoutTenant } = values;

    expect(() => renderSessionPolicy(template(), withoutTenant)).toThrow(ForbiddenError);
    expect(() => renderSessionPolicy(template(), { ...values, params: {} })).toThrow(
      new InvalidRequestError('parameter "prefix" is required'),
    );
  });

  it("re-checks parameter values for characters that are never allowed", () => {
    expect(() => renderSessionPolicy(template(), { ...values, params: { prefix: "q3*" } })).toThrow(
      InvalidRequestError,
    );
  });

  it("never substitutes in keys", () => {
    const t = template({
      sessionPolicy: policyWith(["arn:aws:s3:::r/*"], {
        Condition: { StringEquals: { "aws:PrincipalTag/{{tenant}}": "x" } },
      }),
    });

    expect(() => renderSessionPolicy(t, values)).toThrow(/placeholders are not allowed in keys/);
  });

  it("refuses a policy STS would refuse for its characters", () => {
    const t = template({ sessionPolicy: policyWith(["arn:aws:s3:::r/{{tenant}}/*"]) });

    expect(() => renderSessionPolicy(t, { ...values, tenant: "東京" })).toThrow(InvalidRequestError);
    expect(renderSessionPolicy(t, { ...values, tenant: "zürich" })).toContain("r/zürich/*");
  });

  describe("size limit", () => {
    function sized(fillerLength: number, filler = "a") {
      return template({
        parameters: undefined,
        zone: "workforce",
        sessionPolicy: policyWith([`arn:aws:s3:::r/{{agent}}/${filler.repeat(fillerLength)}`]),
      });
    }
    const minimal = renderSessionPolicy(sized(0), values).length;

    it("accepts a rendered policy of exactly 2048 characters", () => {
      expect(renderSessionPolicy(sized(2048 - minimal), values)).toHaveLength(2048);
    });

    it("refuses a rendered policy of 2049 characters", () => {
      expect(() => renderSessionPolicy(sized(2049 - minimal), values)).toThrow(
        new InvalidRequestError(
          "session policy is 2049 characters without whitespace; STS allows at most 2048",
        ),
      );
    });

    it("does not count whitespace", () => {
      const policy = renderSessionPolicy(sized(2049 - minimal, " "), values);

      expect(policy).toHaveLength(2049);
    });

    it("checks the limit directly on a policy string", () => {
      expect(() => assertPolicySize("x".repeat(2048))).not.toThrow();
      expect(() => assertPolicySize("x".repeat(2049))).toThrow(InvalidRequestError);
      expect(() => assertPolicySize(`${"x".repeat(2048)} \n\t`)).not.toThrow();
    });
  });
});

describe("assertSafeIdentityValue", () => {
  it("names the kind of value, never the value", () => {
    expect(() => assertSafeIdentityValue("tenant", "a*")).toThrow(new ForbiddenError("unsafe tenant claim"));
    expect(() => assertSafeIdentityValue("user", "")).toThrow(
      new ForbiddenError("missing or empty user claim"),
    );
    expect(() => assertSafeIdentityValue("agent", "x\u0000")).toThrow(new ForbiddenError("unsafe agent id"));
  });

  it("accepts ordinary ids", () => {
    for (const value of ["acme", "alice@example.com", "tenant-42", "Zürich GmbH", "client_id:prod"]) {
      expect(() => assertSafeIdentityValue("tenant", value)).not.toThrow();
    }
  });
});

describe("validateParameters", () => {
  const declared = template({
    parameters: {
      prefix: { pattern: "^[a-z0-9-]{1,32}$" },
      env: { enum: ["dev", "prod"] },
      path: { pattern: "^[a-z/]+$", maxLength: 8 },
    },
  });
  const valid = { prefix: "q3", env: "dev", path: "a/b" };

  it("returns the declared parameters", () => {
    expect(validateParameters(declared, valid)).toEqual(valid);
  });

  it("accepts no parameters for a template that declares none", () => {
    const none = template({ parameters: undefined, sessionPolicy: policyWith(["arn:aws:s3:::r/*"]) });

    expect(validateParameters(none, undefined)).toEqual({});
  });

  it.each([
    ["a value that misses the pattern", { ...valid, prefix: "Q3" }, 'parameter "prefix" does not match'],
    ["a value outside the enum", { ...valid, env: "staging" }, 'parameter "env" must be one of'],
    [
      "a value over maxLength",
      { ...valid, path: "a/b/c/d/e" },
      'parameter "path" is longer than 8 characters',
    ],
    ["a missing parameter", { prefix: "q3", env: "dev" }, 'parameter "path" is required'],
    ["a non-string value", { ...valid, prefix: 3 }, 'parameter "prefix" must be a string'],
    ["an empty value", { ...valid, prefix: "" }, 'parameter "prefix" must not be empty'],
    ["an undeclared parameter", { ...valid, bucket: "x" }, 'parameter "bucket" is not declared'],
  ])("refuses %s, naming the parameter", (_what, input, message) => {
    const err = thrown(() => validateParameters(declared, input));

    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(err.message).toContain(message);
  });

  it("applies the default maxLength of 64", () => {
    const t = template({ parameters: { prefix: { pattern: "^[a-z]+$" } } });

    expect(validateParameters(t, { prefix: "a".repeat(64) })).toEqual({ prefix: "a".repeat(64) });
    expect(() => validateParameters(t, { prefix: "a".repeat(65) })).toThrow(/longer than 64/);
  });

  it("does not echo a refused value", () => {
    const err = thrown(() => validateParameters(declared, { ...valid, prefix: "SECRET-VALUE" }));

    expect(err.message).not.toContain("SECRET-VALUE");
  });

  it("does not echo an undeclared parameter name that is not a plausible name", () => {
    const err = thrown(() => validateParameters(declared, { ...valid, "evil\nname": "x" }));

    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(err.message).not.toContain("evil");
  });

  it.each(["*", "?", "$", "{", "}", '"', "\\", "\u0000", "\n", "\u2029"])(
    "refuses %j even when the template's pattern allows it",
    (char) => {
      const t = template({ parameters: { prefix: { pattern: "^[\\s\\S]+$" } } });

      expect(() => validateParameters(t, { prefix: `a${char}` })).toThrow(
        /parameter "prefix" contains a character that is never allowed/,
      );
    },
  );

  it("matches the whole value even when the pattern's alternation is not anchored", () => {
    const t = template({ parameters: { prefix: { pattern: "^a|b$" } } });

    expect(validateParameters(t, { prefix: "a" })).toEqual({ prefix: "a" });
    expect(() => validateParameters(t, { prefix: "ax" })).toThrow(/does not match/);
    expect(() => validateParameters(t, { prefix: "xb" })).toThrow(/does not match/);
  });
});

describe("lintTemplate", () => {
  it("accepts a sound template", () => {
    expect(() => lintTemplate(template())).not.toThrow();
  });

  it.each([
    [
      "an unknown placeholder",
      { sessionPolicy: policyWith(["arn:aws:s3:::r/{{tenat}}/*"]) },
      "sessionPolicy.Statement[0].Resource[0]: unknown placeholder {{tenat}}",
    ],
    [
      "{{tenant}} in a workforce template",
      { zone: "workforce" },
      "sessionPolicy.Statement[0].Resource[0]: {{tenant}} is only available in customer-zone templates",
    ],
    [
      "{{user}} in a workforce template",
      { zone: "workforce", parameters: undefined, sessionPolicy: policyWith(["arn:aws:s3:::r/{{user}}/*"]) },
      "{{user}} is only available in customer-zone templates",
    ],
    [
      "an undeclared parameter",
      { sessionPolicy: policyWith(["arn:aws:s3:::r/{{params.bucket}}/*"]) },
      "sessionPolicy.Statement[0].Resource[0]: {{params.bucket}} names an undeclared parameter",
    ],
    [
      "an unanchored pattern",
      { parameters: { prefix: { pattern: "[a-z]+" } } },
      "parameters.prefix.pattern: must be anchored",
    ],
    [
      "a pattern ending in an escaped dollar",
      { parameters: { prefix: { pattern: "^[a-z]+\\$" } } },
      "parameters.prefix.pattern: must be anchored",
    ],
    [
      "an invalid regular expression",
      { parameters: { prefix: { pattern: "^[a-z$" } } },
      "parameters.prefix.pattern: not a valid regular expression",
    ],
    [
      "a placeholder in a key",
      {
        sessionPolicy: policyWith(["arn:aws:s3:::r/*"], {
          Condition: { StringEquals: { "aws:PrincipalTag/{{tenant}}": "x" } },
        }),
      },
      "sessionPolicy.Statement[0].Condition.StringEquals: placeholders are not allowed in keys",
    ],
    [
      "a leftover {{",
      { sessionPolicy: policyWith(["arn:aws:s3:::r/{{tenant}}/{{params.prefix/*"]) },
      "sessionPolicy.Statement[0].Resource[0]: unbalanced placeholder braces",
    ],
    [
      "a placeholder inside an IAM variable",
      { sessionPolicy: policyWith(["arn:aws:s3:::r/${aws:{{params.prefix}}}/*"]) },
      "must not appear inside an IAM ${…} variable",
    ],
    [
      "an enum value that could never be rendered",
      { parameters: { prefix: { enum: ["ok", "all*"] } } },
      "parameters.prefix.enum: values must not contain",
    ],
  ])("refuses %s, naming the field", (_what, overrides, message) => {
    const err = thrown(() => lintTemplate(template(overrides)));

    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(err.message).toContain(message);
  });

  describe("wildcards in the same path segment as an identity placeholder", () => {
    const customer = (resources: string[], extra: Record<string, unknown> = {}) =>
      template({ parameters: undefined, sessionPolicy: policyWith(resources, extra) });
    const refusal = (name: string) =>
      `a wildcard (* or ?) in the same path segment as {{${name}}} would let one ${name} value match others (e.g. acme matching acme-corp); put a "/" between them, as in {{${name}}}/* (":" does not separate: ${name} values may contain it)`;

    it.each([
      // Right beside the placeholder.
      ["{{tenant}}*", "arn:aws:s3:::reports/{{tenant}}*", "tenant"],
      ["{{tenant}}?", "arn:aws:s3:::reports/{{tenant}}?/x", "tenant"],
      ["{{user}}*", "arn:aws:s3:::home/{{user}}*", "user"],
      ["{{agent}}*", "arn:aws:s3:::agents/{{agent}}*", "agent"],
      ["{{task}}?", "arn:aws:s3:::tasks/{{task}}?", "task"],
      ["*{{tenant}}", "arn:aws:s3:::reports/*{{tenant}}/x", "tenant"],
      ["?{{user}}", "arn:aws:s3:::home/?{{user}}/x", "user"],
      ["*{{agent}}", "arn:aws:s3:::agents/x-*{{agent}}", "agent"],
      ["*{{task}}", "arn:aws:s3:::tasks/*{{task}}", "task"],
      // Further along the same segment: acme would reach acme-corp, corp would reach acme-corp.
      ["{{tenant}}-*", "arn:aws:s3:::reports/{{tenant}}-*", "tenant"],
      ["bucket-{{tenant}}-*", "arn:aws:s3:::bucket-{{tenant}}-*", "tenant"],
      ["{{tenant}}-? before a /", "arn:aws:s3:::reports/{{tenant}}-?/x", "tenant"],
      ["*-{{tenant}}", "arn:aws:s3:::reports/*-{{tenant}}", "tenant"],
      ["*-{{tenant}} before a /", "arn:aws:s3:::reports/*-{{tenant}}/x", "tenant"],
      ["{{user}}.x* in the last segment", "arn:aws:s3:::home/{{user}}.x*", "user"],
      ["{{agent}}_?", "arn:aws:s3:::agents/{{agent}}_?/logs", "agent"],
      ["*{{task}} in the first segment", "*-{{task}}/x", "task"],
      ["x*y{{tenant}}", "arn:aws:s3:::reports/x*y{{tenant}}/z", "tenant"],
      // ":" is not a separator: tenant values may contain it.
      ["{{tenant}}:*", "arn:aws:s3:::reports/{{tenant}}:*", "tenant"],
      ["a region wildcard in a colon-only ARN", "arn:aws:sqs:*:123456789012:{{tenant}}-queue", "tenant"],
      ["*:{{user}}", "arn:aws:sqs:us-east-1:*:{{user}}", "user"],
      ["a log group's :* tail", "arn:aws:logs:us-east-1:123456789012:log-group:/app/{{tenant}}:*", "tenant"],
      // IAM's ${…} neither hides a wildcard nor splits a segment.
      ["a wildcard after ${?}", "arn:aws:s3:::reports/{{tenant}}${?}*", "tenant"],
      ["a / inside an IAM variable", "arn:aws:s3:::reports/*${aws:PrincipalTag/team}{{tenant}}", "tenant"],
      ["a wildcard beside an IAM variable", "arn:aws:s3:::home/${aws:username}*{{user}}/x", "user"],
      [
        "a wildcard inside an IAM variable's default",
        "arn:aws:s3:::r/{{tenant}}${aws:username, '*'}",
        "tenant",
      ],
      // The first identity placeholder of the segment is named.
      ["two identity placeholders in one segment", "arn:aws:s3:::r/{{agent}}-{{tenant}}-*", "agent"],
    ])("refuses %s in a resource, naming the placeholder", (_what, resource, name) => {
      const err = thrown(() => lintTemplate(customer([resource])));

      expect(err).toBeInstanceOf(InvalidRequestError);
      expect(err.message).toBe(`sessionPolicy.Statement[0].Resource[0]: ${refusal(name)}`);
    });

    it("refuses a parameter's wildcard in an identity placeholder's segment", () => {
      // Tenant acme with prefix q3 would reach tenant acme-q3x's resources.
      const t = template({
        sessionPolicy: policyWith(["arn:aws:s3:::reports/{{tenant}}-{{params.prefix}}*"]),
      });

      expect(() => lintTemplate(t)).toThrow(
        new InvalidRequestError(`sessionPolicy.Statement[0].Resource[0]: ${refusal("tenant")}`),
      );
    });

    it.each([
      ["{{tenant}}*", "{{tenant}}*"],
      ["{{tenant}}-*", "{{tenant}}-*"],
      ["*-{{tenant}}/", "shared/*-{{tenant}}/"],
    ])("refuses %s in a condition value", (_what, prefix) => {
      const t = customer(["arn:aws:s3:::reports"], {
        Condition: { StringLike: { "s3:prefix": ["shared/", prefix] } },
      });

      expect(() => lintTemplate(t)).toThrow(
        new InvalidRequestError(
          `sessionPolicy.Statement[0].Condition.StringLike.s3:prefix[1]: ${refusal("tenant")}`,
        ),
      );
    });

    it("refuses a wildcard in any segment holding a placeholder that appears twice", () => {
      expect(() => lintTemplate(customer(["arn:aws:s3:::r/{{tenant}}/{{tenant}}-*"]))).toThrow(
        /same path segment as \{\{tenant\}\}/,
      );
      expect(() =>
        lintTemplate(customer(["arn:aws:s3:::r/{{agent}}/x", "arn:aws:s3:::r/x-{{agent}}-?"])),
      ).toThrow(/Resource\[1\]: a wildcard \(\* or \?\) in the same path segment as \{\{agent\}\}/);
    });

    it.each([
      "arn:aws:s3:::reports/{{tenant}}/*",
      "arn:aws:s3:::reports/*/{{tenant}}/*",
      "arn:aws:s3:::reports/*-x/{{tenant}}/?",
      "arn:aws:s3:::reports/{{tenant}}/{{params.prefix}}*",
      "arn:aws:s3:::reports/{{tenant}}/{{params.prefix}}/*",
      "arn:aws:s3:::bucket-{{tenant}}",
      "arn:aws:s3:::bucket-{{tenant}}/*",
      "arn:aws:s3:::bucket-{{tenant}}-data/{{user}}/*",
      "arn:aws:dynamodb:*:*:table/{{tenant}}",
      "arn:aws:dynamodb:*:123456789012:table/{{tenant}}-sessions/index/*",
      "arn:aws:logs:*:*:log-group:/app/{{tenant}}/service:*",
      "arn:aws:sqs:us-east-1:123456789012:{{tenant}}-queue",
      "arn:aws:s3:::reports/{{user}}/${*}",
      "arn:aws:s3:::reports/${?}{{agent}}/x",
      "arn:aws:s3:::reports/{{tenant}}-${*}-${?}-${$}/*",
      "arn:aws:s3:::home/${aws:username}/{{agent}}/*",
      "arn:aws:s3:::home/${aws:username}-{{user}}/*",
      "arn:aws:s3:::teams/${aws:PrincipalTag/team}/{{tenant}}/*",
      "arn:aws:s3:::*",
      "*",
    ])("accepts %s", (resource) => {
      const t = template({ sessionPolicy: policyWith([resource]) });

      expect(() => lintTemplate(t)).not.toThrow();
    });

    it("renders the forms it accepts, IAM's escapes and variables untouched", () => {
      const t = template({
        sessionPolicy: policyWith([
          "arn:aws:s3:::bucket-{{tenant}}/*",
          "arn:aws:s3:::reports/{{tenant}}/{{params.prefix}}/*",
          "arn:aws:dynamodb:*:*:table/{{tenant}}",
          "arn:aws:s3:::home/${aws:username}-{{user}}/${*}",
        ]),
      });

      expect(JSON.parse(renderSessionPolicy(t, values)).Statement[0].Resource).toStrictEqual([
        "arn:aws:s3:::bucket-acme/*",
        "arn:aws:s3:::reports/acme/q3/*",
        "arn:aws:dynamodb:*:*:table/acme",
        "arn:aws:s3:::home/${aws:username}-alice/${*}",
      ]);
    });

    it.each([
      ["{{tenant}}*", "arn:aws:s3:::reports/{{tenant}}*"],
      ["{{tenant}}-*", "arn:aws:s3:::reports/{{tenant}}-*"],
      ["*-{{tenant}}", "arn:aws:s3:::reports/*-{{tenant}}/x"],
      ["{{tenant}}:*", "arn:aws:s3:::reports/{{tenant}}:*"],
    ])("refuses to render %s in a template stored before lint refused it", (_what, resource) => {
      const t = customer([resource]);

      expect(() => renderSessionPolicy(t, values)).toThrow(
        new InvalidRequestError(`sessionPolicy.Statement[0].Resource[0]: ${refusal("tenant")}`),
      );
    });

    it("passes every example template", () => {
      const dir = resolve(import.meta.dirname, "../../../examples/templates");
      const files = readdirSync(dir).filter((f) => f.endsWith(".json"));

      expect(files.length).toBeGreaterThan(0);
      for (const file of files) {
        const example = parseTemplate(JSON.parse(readFileSync(join(dir, file), "utf8")));

        expect(() => lintTemplate(example), file).not.toThrow();
      }
    });
  });

  it("refuses a template that can never fit STS's session policy limit", () => {
    const t = template({
      parameters: { prefix: { pattern: "^[a-z]+$", maxLength: 256 } },
      sessionPolicy: policyWith(
        Array.from({ length: 8 }, (_, i) => `arn:aws:s3:::r${i}/{{tenant}}/{{params.prefix}}/*`),
      ),
    });

    expect(() => lintTemplate(t)).toThrow(/template can never fit STS's session policy limit/);
  });

  it("sizes the worst case as tenant, user and agent of 64, task of 30 and parameters at their longest", () => {
    const build = (fillerLength: number) =>
      template({
        parameters: { prefix: { pattern: "^[a-z]+$", maxLength: 100 }, env: { enum: ["dev", "production"] } },
        sessionPolicy: policyWith([
          `arn:aws:s3:::r/{{tenant}}/{{user}}/{{agent}}/{{task}}/{{params.prefix}}/{{params.env}}/${"f".repeat(fillerLength)}`,
        ]),
      });
    const worst = (t: TaskTemplate) =>
      renderSessionPolicy(t, {
        tenant: "x".repeat(64),
        user: "x".repeat(64),
        agent: "x".repeat(64),
        task: "x".repeat(30),
        params: { prefix: "x".repeat(100), env: "production" },
      }).length;
    const fits = 2048 - worst(build(0));

    expect(worst(build(fits))).toBe(2048);
    expect(() => lintTemplate(build(fits))).not.toThrow();
    expect(() => lintTemplate(build(fits + 1))).toThrow(/worst case 2049 characters/);
  });
});
