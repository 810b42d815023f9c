import * as z from "zod";
import { ROLE_ARN_PATTERN } from "./accounts.js";
import { isCidr } from "./cidr.js";
import { InvalidRequestError } from "./errors.js";

/**
 * The task template format of CONTRACT.md section 4. Templates are validated with this
 * schema on every write (`templates put`, the sandbox's `--templates`), so a stored
 * template is always well-formed. Unknown fields are refused.
 */
const stringOrStrings = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

const statementSchema = z
  .object({
    Sid: z
      .string()
      .regex(/^[A-Za-z0-9]*$/, "Sid must be alphanumeric")
      .optional(),
    Effect: z.enum(["Allow", "Deny"]),
    Action: stringOrStrings.optional(),
    NotAction: stringOrStrings.optional(),
    Resource: stringOrStrings.optional(),
    NotResource: stringOrStrings.optional(),
    Condition: z.record(z.string(), z.record(z.string(), stringOrStrings)).optional(),
  })
  .strict()
  .refine((s) => (s.Action === undefined) !== (s.NotAction === undefined), {
    message: "a statement needs exactly one of Action or NotAction",
  })
  .refine((s) => (s.Resource === undefined) !== (s.NotResource === undefined), {
    message: "a statement needs exactly one of Resource or NotResource",
  });

export const sessionPolicySchema = z
  .object({
    Version: z.literal("2012-10-17"),
    Statement: z.array(statementSchema).min(1),
  })
  .strict();

const parameterSchema = z
  .object({
    description: z.string().max(256).optional(),
    /** An anchored regular expression (`^…$`) the value must match. */
    pattern: z.string().min(1).max(256).optional(),
    enum: z.array(z.string().min(1).max(256)).min(1).optional(),
    /** Longest accepted value; default 64. Used for the put-time size check too. */
    maxLength: z.number().int().min(1).max(256).optional(),
  })
  .strict()
  .refine((p) => (p.pattern === undefined) !== (p.enum === undefined), {
    message: "a parameter needs exactly one of pattern or enum",
  });

/**
 * How the drift detector treats a template's tasks: `accessDeniedBurst` errors within the window
 * revoke; an action the session policy does not allow revokes (`"revoke"`) or is only audited
 * (`"audit"`); with `sourceIps`, a call from any other address revokes.
 */
export const driftSchema = z
  .object({
    accessDeniedBurst: z
      .object({
        count: z.number().int().min(1).max(1000),
        windowSeconds: z.number().int().min(1).max(3600),
      })
      .strict()
      .default({ count: 5, windowSeconds: 60 }),
    offPolicyActions: z.enum(["revoke", "audit"]).default("revoke"),
    sourceIps: z
      .array(z.string().refine(isCidr, "must be CIDR notation, e.g. 203.0.113.0/24"))
      .min(1)
      .max(50)
      .optional(),
  })
  .strict();

export const templateSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, "name must match ^[a-z0-9][a-z0-9-]{0,63}$"),
    description: z.string().max(512).optional(),
    zone: z.enum(["workforce", "customer"]),
    roleArn: z.string().regex(ROLE_ARN_PATTERN, "roleArn must be an IAM role ARN"),
    sessionPolicy: sessionPolicySchema,
    parameters: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,31}$/), parameterSchema).optional(),
    agents: z
      .array(
        z
          .object({
            issuer: z.string().url(),
            subjects: z.array(z.string().min(1).max(256)).min(1),
          })
          .strict(),
      )
      .default([]),
    ttl: z
      .object({
        defaultSeconds: z.number().int().min(900).max(43200),
        maxSeconds: z.number().int().min(900).max(43200),
        /** Longest single credential; STS role chaining caps it at 3600. */
        credentialMaxSeconds: z.number().int().min(900).max(3600).optional(),
      })
      .strict()
      .refine((t) => t.defaultSeconds <= t.maxSeconds, {
        message: "ttl.defaultSeconds must be ≤ ttl.maxSeconds",
      })
      .default({ defaultSeconds: 900, maxSeconds: 3600 }),
    approval: z
      .object({
        required: z.boolean(),
        quorum: z.number().int().min(1).max(10).default(1),
        timeoutSeconds: z.number().int().min(60).max(86400).default(3600),
      })
      .strict()
      .default({ required: false, quorum: 1, timeoutSeconds: 3600 }),
    secrets: z
      .array(
        z
          .object({
            arn: z.string().regex(/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+$/),
            rotateOnEnd: z.boolean().default(true),
          })
          .strict(),
      )
      .default([]),
    maxActivePerAgent: z.number().int().min(1).max(1000).optional(),
    /** Drift detection (CONTRACT.md section 9, `lib/drift/`); the defaults apply without it. */
    drift: driftSchema.optional(),
  })
  .strict();

export type TaskTemplate = z.infer<typeof templateSchema>;
export type TemplateParameter = NonNullable<TaskTemplate["parameters"]>[string];
export type DriftSettings = z.infer<typeof driftSchema>;

/** Formats zod issues as `path: message; …` naming the offending field. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

/**
 * Parses and structurally validates a template. Semantic checks (placeholders, parameter
 * patterns, worst-case policy size) are done by `lintTemplate` in `render.ts`.
 * @throws InvalidRequestError naming the offending field
 */
export function parseTemplate(input: unknown): TaskTemplate {
  const result = templateSchema.safeParse(input);
  if (!result.success) throw new InvalidRequestError(`invalid template: ${formatIssues(result.error)}`);
  return result.data;
}
