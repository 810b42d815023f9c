import { Template } from "aws-cdk-lib/assertions";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { describe, expect, it } from "vitest";
import * as z from "zod";
import { gatewayModelSchema, toGatewaySchema } from "../../infra/constructs/gateway-models.js";
import { JitvFunction } from "../../infra/constructs/jitv-function.js";
import { GATEWAY_MODEL_NAMES, VendingApi } from "../../infra/constructs/vending-api.js";
import { CONTRACT_ROUTES } from "../../lib/http/contract.js";
import { constructTestStack, nagFindings, type Resources } from "./support.js";

type Schema = Record<string, unknown>;

/**
 * JSON-schema draft 4 validation, for exactly the keywords toGatewaySchema keeps (it refuses the
 * others): what API Gateway checks a body against before the function runs.
 */
function accepts(schema: Schema, value: unknown): boolean {
  const s = schema as {
    type?: string;
    properties?: Record<string, Schema>;
    required?: string[];
    additionalProperties?: boolean | Schema;
    patternProperties?: Record<string, Schema>;
    minProperties?: number;
    maxProperties?: number;
    minLength?: number;
    maxLength?: number;
    pattern?: string;
    minimum?: number;
    maximum?: number;
    exclusiveMinimum?: boolean;
    exclusiveMaximum?: boolean;
    enum?: unknown[];
  };
  const isObject = typeof value === "object" && value !== null && !Array.isArray(value);
  const typeOk = {
    object: isObject,
    string: typeof value === "string",
    integer: Number.isInteger(value),
    number: typeof value === "number",
    boolean: typeof value === "boolean",
    array: Array.isArray(value),
  } as Record<string, boolean>;
  if (s.type !== undefined && !typeOk[s.type]) return false;
  if (s.enum !== undefined && !s.enum.includes(value)) return false;
  if (typeof value === "string") {
    if (s.minLength !== undefined && value.length < s.minLength) return false;
    if (s.maxLength !== undefined && value.length > s.maxLength) return false;
    if (s.pattern !== undefined && !new RegExp(s.pattern, "u").test(value)) return false;
  }
  if (typeof value === "number") {
    if (s.minimum !== undefined && (s.exclusiveMinimum ? value <= s.minimum : value < s.minimum))
      return false;
    if (s.maximum !== undefined && (s.exclusiveMaximum ? value >= s.maximum : value > s.maximum))
      return false;
  }
  if (isObject) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (s.minProperties !== undefined && entries.length < s.minProperties) return false;
    if (s.maxProperties !== undefined && entries.length > s.maxProperties) return false;
    if ((s.required ?? []).some((name) => !Object.hasOwn(value as object, name))) return false;
    for (const [name, inner] of entries) {
      const declared = s.properties?.[name];
      const patterns = Object.entries(s.patternProperties ?? {}).filter(([p]) =>
        new RegExp(p, "u").test(name),
      );
      if (declared !== undefined && !accepts(declared, inner)) return false;
      if (patterns.some(([, p]) => !accepts(p, inner))) return false;
      if (declared === undefined && patterns.length === 0) {
        if (s.additionalProperties === false) return false;
        if (typeof s.additionalProperties === "object" && !accepts(s.additionalProperties, inner))
          return false;
      }
    }
  }
  return true;
}

/** A body the schema accepts: every required property, at its smallest valid value. */
function validBody(schema: Schema): Record<string, unknown> {
  const properties = (schema.properties ?? {}) as Record<string, Schema>;
  return Object.fromEntries(
    ((schema.required ?? []) as string[]).map((name) => [name, validValue(properties[name] ?? {})]),
  );
}
function validValue(schema: Schema): unknown {
  if (schema.type === "string") return "a".repeat(Math.max(1, Number(schema.minLength ?? 1)));
  if (schema.type === "integer") return Number(schema.minimum ?? 0) + 1;
  return {};
}

/**
 * Bodies that break one constraint of the handler's zod schema each (read off its JSON schema):
 * a missing required property, an unknown property, each string too short or too long or not a
 * string, each integer fractional or out of range.
 */
function violations(json: Schema): [string, unknown][] {
  const base = validBody(json);
  const out: [string, unknown][] = [
    ["not an object", []],
    ["null", null],
  ];
  for (const name of (json.required ?? []) as string[]) {
    const { [name]: _, ...rest } = base;
    out.push([`without ${name}`, rest]);
  }
  if (json.additionalProperties === false) out.push(["an unknown property", { ...base, unknownField: "x" }]);
  for (const [name, p] of Object.entries((json.properties ?? {}) as Record<string, Schema>)) {
    const withValue = (v: unknown) => ({ ...base, [name]: v });
    if (p.type === "string") {
      out.push([`${name} not a string`, withValue(7)]);
      if (typeof p.maxLength === "number")
        out.push([`${name} too long`, withValue("a".repeat(p.maxLength + 1))]);
      if (typeof p.minLength === "number" && p.minLength > 0) {
        out.push([`${name} too short`, withValue("a".repeat(p.minLength - 1))]);
      }
    }
    if (p.type === "integer") {
      out.push([`${name} fractional`, withValue(1.5)], [`${name} a string`, withValue("1")]);
      if (typeof p.minimum === "number")
        out.push([`${name} below its minimum`, withValue(p.exclusiveMinimum ? p.minimum : p.minimum - 1)]);
    }
    if (p.type === "object") out.push([`${name} not an object`, withValue("x")]);
  }
  return out;
}

const bodyRoutes = CONTRACT_ROUTES.filter((route) => route.body !== undefined);

describe("API Gateway request models", () => {
  const stack = constructTestStack();
  new VendingApi(stack, "Http", {
    handler: new JitvFunction(stack, "Handler", {
      entry: new URL("../../functions/api.ts", import.meta.url).pathname,
      description: "API",
      logRetention: RetentionDays.ONE_MONTH,
    }).function,
    stageName: "dev",
    rateLimit: 50,
    burstLimit: 100,
    vendRateLimit: 10,
    vendBurstLimit: 20,
    logRetention: RetentionDays.ONE_MONTH,
  });
  const resources = Template.fromStack(stack).toJSON().Resources as Resources;
  const deployedModel = (name: string) =>
    Object.values(resources).find((r) => r.Type === "AWS::ApiGateway::Model" && r.Properties.Name === name)
      ?.Properties.Schema as Schema | undefined;

  it("passes cdk-nag on its own", () => {
    expect(nagFindings(stack)).toEqual([]);
  });

  it("deploys one model per gateway-checked route, generated from the handler's zod schema", () => {
    const checked = CONTRACT_ROUTES.filter((route) => route.gatewayModel !== undefined);
    expect(checked.map((route) => route.gatewayModel)).toEqual(["vend", "revoke"]);
    for (const route of checked) {
      const name = GATEWAY_MODEL_NAMES[route.gatewayModel as "vend" | "revoke"];
      const model = deployedModel(name);
      const zodJson = z.toJSONSchema(route.body as z.ZodType, { target: "draft-4", io: "input" }) as Schema;
      expect(model).toMatchObject({
        $schema: "http://json-schema.org/draft-04/schema#",
        title: name,
        type: "object",
        additionalProperties: zodJson.additionalProperties,
        required: zodJson.required,
      });
      expect(Object.keys(model?.properties as Schema)).toEqual(Object.keys(zodJson.properties as Schema));
    }
    // The gateway's extra bound on template parameters (checked against the template in the function).
    const vendProperties = deployedModel("VendRequest")?.properties as Record<string, Schema> | undefined;
    expect(vendProperties?.parameters).toMatchObject({ maxProperties: 32, additionalProperties: false });
  });

  it("rejects, for every route with a body, each body its handler's zod schema rejects for its shape", () => {
    expect(bodyRoutes.length).toBeGreaterThanOrEqual(6);
    for (const route of bodyRoutes) {
      const body = route.body as z.ZodType;
      const where = `${route.method} ${route.path}`;
      const zodJson = z.toJSONSchema(body, { target: "draft-4", io: "input" }) as Schema;
      const name = route.gatewayModel && GATEWAY_MODEL_NAMES[route.gatewayModel];
      // The deployed model where there is one; the same conversion for the routes the function alone checks.
      const model = (
        name ? deployedModel(name) : JSON.parse(JSON.stringify(gatewayModelSchema(body, where)))
      ) as Schema;
      const valid = validBody(zodJson);
      expect(body.safeParse(valid).success, `${where}: valid`).toBe(true);
      expect(accepts(model, valid), `${where}: valid`).toBe(true);
      const cases = violations(zodJson);
      expect(cases.length).toBeGreaterThan(2);
      for (const [what, invalid] of cases) {
        expect(body.safeParse(invalid).success, `${where}: ${what} (zod)`).toBe(false);
        expect(accepts(model, invalid), `${where}: ${what} (model)`).toBe(false);
      }
    }
  });
});

describe("toGatewaySchema", () => {
  it("keeps the draft-4 keywords API Gateway checks and drops $schema", () => {
    expect(
      toGatewaySchema({
        $schema: "http://json-schema.org/draft-04/schema#",
        type: "object",
        properties: { n: { type: "integer", minimum: 0, exclusiveMinimum: true, maximum: 9 } },
        patternProperties: { "^x": { type: "string", pattern: "^[a-z]+$", maxLength: 3 } },
        additionalProperties: {},
        required: ["n"],
        maxProperties: 4,
      }),
    ).toEqual({
      type: "object",
      properties: { n: { type: "integer", minimum: 0, exclusiveMinimum: true, maximum: 9 } },
      patternProperties: { "^x": { type: "string", pattern: "^[a-z]+$", maxLength: 3 } },
      additionalProperties: true,
      required: ["n"],
      maxProperties: 4,
    });
  });

  it("refuses a keyword it cannot carry, naming it and where it is, rather than dropping a constraint", () => {
    expect(() =>
      toGatewaySchema({ type: "object", properties: { a: { anyOf: [{ type: "string" }] } } }),
    ).toThrow('request model: JSON-schema keyword "anyOf" at #/properties/a is not supported');
    const schema = z.object({ tags: z.array(z.string()) }).strict();
    expect(() => gatewayModelSchema(schema, "Tags")).toThrow(/keyword "items"/);
  });

  it("only narrows properties the body schema has", () => {
    const schema = z.object({ a: z.string() }).strict();
    expect(gatewayModelSchema(schema, "A", { a: { maxLength: 3 } }).properties?.a).toEqual({
      type: "string",
      maxLength: 3,
    });
    expect(() => gatewayModelSchema(schema, "A", { b: { maxLength: 3 } })).toThrow(
      'no property "b" to narrow',
    );
  });
});
