import { type JsonSchema, JsonSchemaVersion } from "aws-cdk-lib/aws-apigateway";
import * as z from "zod";

/**
 * The JSON-schema keywords a request model keeps, by the name CDK's `JsonSchema` gives them.
 * API Gateway validates bodies against draft 4; these are the ones jitv's body schemas use.
 * Any other keyword stops the synth: a constraint dropped silently would let the gateway accept
 * what the contract refuses, and the schema change that brought it needs a decision here.
 */
const KEYWORDS = {
  type: "type",
  title: "title",
  description: "description",
  properties: "properties",
  required: "required",
  additionalProperties: "additionalProperties",
  patternProperties: "patternProperties",
  minProperties: "minProperties",
  maxProperties: "maxProperties",
  minLength: "minLength",
  maxLength: "maxLength",
  pattern: "pattern",
  minimum: "minimum",
  maximum: "maximum",
  exclusiveMinimum: "exclusiveMinimum",
  exclusiveMaximum: "exclusiveMaximum",
  enum: "enum",
} as const satisfies Record<string, keyof JsonSchema>;

/** Keywords whose value is a map of name to schema. */
const SCHEMA_MAPS = new Set(["properties", "patternProperties"]);

/**
 * Converts a draft-4 JSON schema (as `z.toJSONSchema(…, { target: "draft-4" })` writes it) into
 * the subset API Gateway models accept, in CDK's shape: `$schema` dropped, `additionalProperties: {}`
 * (anything) as `true`, every other keyword kept or refused.
 * @throws Error naming the unsupported keyword and where it is
 */
export function toGatewaySchema(json: Readonly<Record<string, unknown>>, path = "#"): JsonSchema {
  const out: Record<string, unknown> = {};
  for (const [keyword, value] of Object.entries(json)) {
    if (keyword === "$schema") continue;
    if (!Object.hasOwn(KEYWORDS, keyword)) {
      throw new Error(`request model: JSON-schema keyword "${keyword}" at ${path} is not supported`);
    }
    const at = `${path}/${keyword}`;
    if (SCHEMA_MAPS.has(keyword)) {
      out[keyword] = Object.fromEntries(
        Object.entries(value as Record<string, Record<string, unknown>>).map(([name, inner]) => [
          name,
          toGatewaySchema(inner, `${at}/${name}`),
        ]),
      );
    } else if (keyword === "additionalProperties" && typeof value === "object" && value !== null) {
      out[keyword] =
        Object.keys(value).length === 0 ? true : toGatewaySchema(value as Record<string, unknown>, at);
    } else {
      out[keyword] = value;
    }
  }
  return out as JsonSchema;
}

/**
 * The API Gateway model of a request body, generated from the zod schema the handler validates
 * it with (what a client may send: `io: "input"`), optionally narrowed further per property
 * (`narrowing`, which may only tighten properties the schema already has).
 */
export function gatewayModelSchema(
  body: z.ZodType,
  title: string,
  narrowing: Readonly<Record<string, JsonSchema>> = {},
): JsonSchema {
  const json = z.toJSONSchema(body, { target: "draft-4", io: "input" }) as Record<string, unknown>;
  const schema = toGatewaySchema(json);
  const properties = { ...schema.properties };
  for (const [name, bounds] of Object.entries(narrowing)) {
    const base = properties[name];
    if (base === undefined) throw new Error(`request model ${title}: no property "${name}" to narrow`);
    properties[name] = { ...base, ...bounds };
  }
  return {
    schema: JsonSchemaVersion.DRAFT4,
    title,
    ...schema,
    ...(schema.properties === undefined ? {} : { properties }),
  };
}
