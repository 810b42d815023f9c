import { checkParseSchema, schemaToJson, validate } from "@cedar-policy/cedar-wasm/nodejs";
import { describe, expect, it } from "vitest";
import {
  cedarString,
  compileAgentsPolicy,
  loadPolicySet,
  principalEntityId,
  validatePolicySet,
} from "../../../lib/authz/cedar-policy-set.js";
import { CEDAR_ACTIONS, CEDAR_SCHEMA } from "../../../lib/authz/schema.js";
import { InvalidRequestError } from "../../../lib/domain/errors.js";
import { AGENTS, template } from "./fixtures.js";

function refusal(text: string): string {
  try {
    validatePolicySet(text);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRequestError);
    return (error as Error).message;
  }
  throw new Error("the policy set was accepted");
}

describe("the Cedar schema", () => {
  it("parses and declares every action", () => {
    expect(checkParseSchema(CEDAR_SCHEMA)).toEqual({ type: "success" });
    const json = schemaToJson(CEDAR_SCHEMA);
    if (json.type !== "success") throw new Error("schema does not convert");
    expect(Object.keys(json.json.Jitv?.actions ?? {}).sort()).toEqual([...CEDAR_ACTIONS].sort());
    expect(Object.keys(json.json.Jitv?.entityTypes ?? {}).sort()).toEqual(
      ["Agent", "Parameters", "Role", "Task", "Template", "Tenant", "User", "Zone"].sort(),
    );
  });
});

describe("validatePolicySet", () => {
  it("accepts valid policies and returns their ids, effects and reasons", () => {
    const policies = validatePolicySet(`
      @id("long-ttl") @reason("too long")
      forbid (principal, action == Jitv::Action::"Vend", resource) when { context.ttlSeconds > 1800 };
      @id("ops") permit (principal in Jitv::Role::"ops", action == Jitv::Action::"Vend", resource);
    `);

    expect(policies.map(({ id, effect, reason }) => ({ id, effect, reason }))).toEqual([
      { id: "long-ttl", effect: "forbid", reason: "too long" },
      { id: "ops", effect: "permit", reason: undefined },
    ]);
  });

  it("accepts an empty set (only comments)", () => {
    expect(validatePolicySet("// nothing yet\n")).toEqual([]);
  });

  it("refuses a syntax error with Cedar's message, line and column", () => {
    const message = refusal(
      '@id("a") permit (principal, action, resource);\n@id("b") forbid (principal, action, resource) when { 1 + };',
    );

    expect(message).toMatch(/^invalid policy set: line 2, column \d+: unexpected token `}`/);
  });

  it("refuses an attribute the schema does not declare, once, with Cedar's message", () => {
    const message = refusal('@id("typo") forbid (principal, action, resource) when { context.ttl > 10 };');

    expect(message).toContain("for policy `typo`, attribute `ttl` in context for Jitv::Action::");
    expect(message).toContain("not found");
    expect(message.match(/attribute `ttl`/g)).toHaveLength(1);
    expect(message).toMatch(/and for \d+ more actions/);
  });

  it("refuses an optional attribute read without `has`", () => {
    const message = refusal(
      '@id("p") forbid (principal, action == Jitv::Action::"Vend", resource) when { context.purpose == "" };',
    );

    expect(message).toContain("unable to guarantee safety of access to optional attribute `purpose`");
  });

  it("refuses a type error and an unknown zone", () => {
    expect(
      refusal(
        '@id("t") forbid (principal, action == Jitv::Action::"Vend", resource) when { context.ttlSeconds == "900" };',
      ),
    ).toContain("for policy `t`");
    expect(refusal('@id("z") forbid (principal, action, resource in Jitv::Zone::"moon");')).toContain(
      'valid entity eids: "workforce", "customer"',
    );
  });

  it("refuses policies without @id, duplicate ids, reserved ids and policy templates", () => {
    expect(refusal("permit (principal, action, resource);")).toContain('needs an @id("…") annotation');
    expect(
      refusal(
        '@id("a") permit (principal, action, resource);\n@id("a") forbid (principal, action, resource);',
      ),
    ).toContain('duplicate @id "a"');
    expect(refusal('@id("template:x:agents") permit (principal, action, resource);')).toContain(
      "is reserved",
    );
    expect(refusal('@id("has space") permit (principal, action, resource);')).toContain("@id must match");
    expect(refusal('@id("t") permit (principal == ?principal, action, resource);')).toContain(
      "policy templates",
    );
  });

  it("refuses an oversized set and trims Cedar's messages", () => {
    expect(refusal(`// ${"x".repeat(70_000)}`)).toContain("longer than");
    const many = Array.from(
      { length: 8 },
      (_, i) =>
        `@id("p${i}") forbid (principal, action == Jitv::Action::"Vend", resource) when { context.nope${i} };`,
    ).join("\n");

    const message = refusal(many);

    expect(message).toContain("; and 3 more");
    expect(message.length).toBeLessThan(2000);
  });
});

describe("loadPolicySet", () => {
  it("names policies without @id and disambiguates duplicates instead of failing", () => {
    const ids = loadPolicySet(
      'permit (principal, action, resource);\n@id("a") forbid (principal, action, resource);\n@id("a") permit (principal, action, resource);',
    ).map((p) => p.id);

    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
    expect(ids).toEqual(expect.arrayContaining(["a", "a#2"]));
  });
});

describe("compiling a template's agents list", () => {
  it("compiles one permit for the template, which validates against the schema", () => {
    const policy = compileAgentsPolicy(
      template("reports-read", {
        agents: [
          { issuer: AGENTS, subjects: ["agent-a", "agent-b"] },
          { issuer: "https://other.example", subjects: ["bot"] },
        ],
      }),
    );

    expect(policy).toBe(
      [
        '@id("template:reports-read:agents")',
        'permit (principal is Jitv::Agent, action == Jitv::Action::"Vend", resource == Jitv::Template::"reports-read")',
        'when { [Jitv::Agent::"https://agents.example|agent-a", Jitv::Agent::"https://agents.example|agent-b", Jitv::Agent::"https://other.example|bot"].contains(principal) };',
      ].join("\n"),
    );
    const answer = validate({ schema: CEDAR_SCHEMA, policies: { staticPolicies: policy ?? "" } });
    expect(answer).toMatchObject({ type: "success", validationErrors: [] });
  });

  it("compiles nothing for an empty list", () => {
    expect(compileAgentsPolicy(template("x", { agents: [] }))).toBeUndefined();
  });

  it("escapes quotes, backslashes and control characters in string literals", () => {
    expect(cedarString('a"b\\c\nd\u0000e\u2028f😀')).toBe('"a\\"b\\\\c\\u{a}d\\u{0}e\\u{2028}f😀"');
    expect(principalEntityId("https://x.example/a|b%", "c|d")).toBe("https://x.example/a%7Cb%25|c|d");
  });
});
