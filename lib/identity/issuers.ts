/**
 * Trusted issuer profiles (CONTRACT.md section 2): the JSON file that says which OIDC
 * issuers may present tokens to jitv, with which keys, audiences and algorithms.
 * Read once per cold start; every problem is a `ConfigError` naming the field path.
 */
import { readFileSync } from "node:fs";
import * as z from "zod";
import { ConfigError } from "../domain/errors.js";
import type { IssuerKind, RoleRule, Zone } from "../domain/identity.js";

/** The only signature algorithms an issuer profile may allow: asymmetric ones. */
export const ISSUER_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;
export type IssuerAlgorithm = (typeof ISSUER_ALGORITHMS)[number];

/** Names of the token claims a profile reads. `agent` and `user` default to `sub`. */
export interface ClaimMapping {
  readonly agent: string;
  readonly user: string;
  readonly tenant?: string;
  readonly groups?: string;
}

export interface IssuerProfile {
  readonly name: string;
  /** Compared with the token's `iss` by exact string match. */
  readonly issuer: string;
  /** The only place keys for this issuer come from. */
  readonly jwksUri: string;
  readonly audiences: readonly string[];
  readonly algorithms: readonly IssuerAlgorithm[];
  readonly kind: IssuerKind;
  readonly zone: Zone;
  readonly claims: ClaimMapping;
  /** @default 3600 */
  readonly maxTokenAgeSeconds: number;
  /** @default 30 (at most 300) */
  readonly clockToleranceSeconds: number;
  /**
   * Customer-zone user profiles only: the exact tenant ids this issuer may assert. A token naming
   * any other tenant is refused (`403`). Absent: the issuer may assert any tenant.
   */
  readonly tenants?: readonly string[];
  /**
   * User profiles only: for an identity provider that cannot mint RFC 8693 `act`, tokens whose
   * `aud` holds `audience` count as delegation tokens (accepted only as a `subjectToken`, never
   * as a bearer token). The audience must not be one of the profile's `audiences`.
   */
  readonly delegation?: { readonly audience: string };
  /** When set, the token header's `typ` must equal one of these (case-insensitive, `application/` optional). */
  readonly typ?: readonly string[];
  /** When set, the token's `azp` (or `client_id`) claim must be one of these. */
  readonly azp?: readonly string[];
}

export interface IssuerConfig {
  readonly issuers: readonly IssuerProfile[];
  /** One rule or a list (one per trust zone's user issuer); normalised to a list. */
  readonly admins?: readonly RoleRule[];
  readonly approvers?: readonly RoleRule[];
}

const DEFAULT_MAX_TOKEN_AGE_SECONDS = 3600;
const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30;
const MAX_CLOCK_TOLERANCE_SECONDS = 300;
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

const nonEmpty = z.string().min(1, "must not be empty");

const algorithm = z.string().transform((value, ctx): IssuerAlgorithm => {
  if ((ISSUER_ALGORITHMS as readonly string[]).includes(value)) return value as IssuerAlgorithm;
  let message: string;
  if (/^HS\d+$/i.test(value)) {
    message =
      `${value} is symmetric and refused: the verifier would need the issuer's shared secret, and anyone ` +
      "holding it could mint tokens; use an asymmetric algorithm whose public keys are in the JWKS";
  } else if (value.toLowerCase() === "none") {
    message = "none means unsigned tokens and is refused";
  } else {
    message = `unsupported algorithm ${JSON.stringify(value)}; allowed: ${ISSUER_ALGORITHMS.join(", ")}`;
  }
  ctx.addIssue({ code: "custom", message });
  return z.NEVER;
});

const jwksUri = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: "custom", message: "must be an absolute URL" });
    return;
  }
  const loopbackHttp = url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname);
  if (url.protocol !== "https:" && !loopbackHttp) {
    ctx.addIssue({
      code: "custom",
      message: "must use https (plain http is allowed only on 127.0.0.1, localhost or [::1])",
    });
  }
  if (url.username !== "" || url.password !== "") {
    ctx.addIssue({ code: "custom", message: "must not contain credentials" });
  }
});

const claimsSchema = z
  .strictObject({
    agent: nonEmpty.optional(),
    user: nonEmpty.optional(),
    tenant: nonEmpty.optional(),
    groups: nonEmpty.optional(),
  })
  .optional()
  .transform(
    (claims): ClaimMapping => ({
      agent: claims?.agent ?? "sub",
      user: claims?.user ?? "sub",
      ...(claims?.tenant === undefined ? {} : { tenant: claims.tenant }),
      ...(claims?.groups === undefined ? {} : { groups: claims.groups }),
    }),
  );

const profileSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "must be 1-64 letters, digits, '.', '_' or '-'"),
    issuer: nonEmpty,
    jwksUri,
    audiences: z.array(nonEmpty).min(1, "must list at least one audience"),
    algorithms: z.array(algorithm).min(1, "must list at least one algorithm"),
    kind: z.enum(["agent", "user"]),
    zone: z.enum(["workforce", "customer"]),
    claims: claimsSchema,
    maxTokenAgeSeconds: z.int().positive().default(DEFAULT_MAX_TOKEN_AGE_SECONDS),
    clockToleranceSeconds: z
      .int()
      .min(0)
      .max(MAX_CLOCK_TOLERANCE_SECONDS, `must be at most ${MAX_CLOCK_TOLERANCE_SECONDS}`)
      .default(DEFAULT_CLOCK_TOLERANCE_SECONDS),
    tenants: z.array(nonEmpty).min(1, "must list at least one tenant").optional(),
    delegation: z.strictObject({ audience: nonEmpty }).optional(),
    typ: z.array(nonEmpty).min(1, "must list at least one type").optional(),
    azp: z.array(nonEmpty).min(1, "must list at least one client").optional(),
  })
  .superRefine((profile, ctx) => {
    if (profile.tenants !== undefined && !(profile.kind === "user" && profile.zone === "customer")) {
      ctx.addIssue({
        code: "custom",
        path: ["tenants"],
        message: "only a customer-zone user profile may list tenants",
      });
    }
    if (profile.delegation !== undefined) {
      if (profile.kind !== "user") {
        ctx.addIssue({
          code: "custom",
          path: ["delegation"],
          message: "only a user profile may declare delegation",
        });
      } else if (profile.audiences.includes(profile.delegation.audience)) {
        ctx.addIssue({
          code: "custom",
          path: ["delegation", "audience"],
          message:
            "must differ from every entry of audiences, or any token of the issuer would be a delegation token",
        });
      }
    }
  });

const claimRuleSchema = z.strictObject({
  issuer: nonEmpty,
  claim: nonEmpty,
  values: z.array(nonEmpty).min(1, "must list at least one value"),
});

// The contract shows one rule; a list lets each trust zone have its own admins and approvers.
const claimRules = z
  .union([claimRuleSchema, z.array(claimRuleSchema).min(1, "must list at least one rule")])
  .transform((rules) => (Array.isArray(rules) ? rules : [rules]));

const issuerConfigSchema = z
  .strictObject({
    issuers: z.array(profileSchema).min(1, "must list at least one issuer profile"),
    admins: claimRules.optional(),
    approvers: claimRules.optional(),
  })
  .superRefine((config, ctx) => {
    for (const issue of duplicateIssues(config.issuers)) ctx.addIssue({ code: "custom", ...issue });
  });

// Fails to compile if the schema drifts from the published interfaces.
const _schemaMatchesInterface: (value: z.output<typeof issuerConfigSchema>) => IssuerConfig = (value) =>
  value;
void _schemaMatchesInterface;

function duplicateIssues(
  issuers: readonly Pick<IssuerProfile, "name" | "issuer">[],
): { path: (string | number)[]; message: string }[] {
  const issues: { path: (string | number)[]; message: string }[] = [];
  for (const field of ["name", "issuer"] as const) {
    const firstIndex = new Map<string, number>();
    issuers.forEach((profile, index) => {
      const value = profile[field];
      const first = firstIndex.get(value);
      if (first === undefined) {
        firstIndex.set(value, index);
      } else {
        issues.push({
          path: ["issuers", index, field],
          message: `duplicate ${field} ${JSON.stringify(value)} (also issuers[${first}].${field})`,
        });
      }
    });
  }
  return issues;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out === "" ? "(top level)" : out;
}

function formatIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown field`).join("; ");
  }
  return `${formatPath(issue.path)}: ${issue.message}`;
}

// Friendlier wording than zod's defaults for the two issues a hand-written file hits most.
const errorMap: z.core.$ZodErrorMap = (issue) => {
  if (issue.code === "invalid_type") {
    return issue.input === undefined ? "is required" : `must be ${article(issue.expected)}`;
  }
  if (issue.code === "invalid_value") {
    return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
  }
  return undefined;
};

function article(expected: string): string {
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

/**
 * Validates a parsed issuers file and fills defaults.
 *
 * @throws ConfigError listing every problem as `path: reason`, e.g.
 *   `issuers[0].algorithms[1]: HS256 is symmetric and refused: ...`.
 * @example
 * const config = parseIssuerConfig(JSON.parse(text));
 * config.issuers[0].claims.agent; // "sub" unless mapped
 */
export function parseIssuerConfig(json: unknown): IssuerConfig {
  const result = issuerConfigSchema.safeParse(json, { error: errorMap });
  if (!result.success) {
    throw new ConfigError(`invalid issuers file: ${result.error.issues.map(formatIssue).join("; ")}`);
  }
  return result.data;
}

/**
 * Reads and validates an issuers file from disk (synchronously: done once per cold start).
 *
 * @throws ConfigError when the file cannot be read, is not JSON, or fails {@link parseIssuerConfig}.
 */
export function loadIssuerConfigFile(path: string): IssuerConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read issuers file ${path}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`issuers file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  try {
    return parseIssuerConfig(json);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`${path}: ${error.message}`);
    throw error;
  }
}

/**
 * Combines two validated configurations, e.g. the sandbox's built-in local issuer (`a`)
 * and the profiles of `--issuers FILE` (`b`).
 *
 * `admins` and `approvers` rules of both apply (each rule names its own issuer).
 *
 * @throws ConfigError when a profile `name` or `issuer` appears in both.
 */
export function mergeIssuerConfigs(a: IssuerConfig, b: IssuerConfig): IssuerConfig {
  const problems: string[] = [];
  for (const field of ["name", "issuer"] as const) {
    const seen = new Set(a.issuers.map((profile) => profile[field]));
    for (const profile of b.issuers) {
      if (seen.has(profile[field])) {
        problems.push(
          `issuer profile ${field} ${JSON.stringify(profile[field])} is defined in both configurations`,
        );
      }
    }
  }
  if (problems.length > 0) {
    throw new ConfigError(`cannot merge issuer configurations: ${problems.join("; ")}`);
  }
  const both = (x?: readonly RoleRule[], y?: readonly RoleRule[]) =>
    x || y ? [...(x ?? []), ...(y ?? [])] : undefined;
  const admins = both(a.admins, b.admins);
  const approvers = both(a.approvers, b.approvers);
  return {
    issuers: [...a.issuers, ...b.issuers],
    ...(admins === undefined ? {} : { admins }),
    ...(approvers === undefined ? {} : { approvers }),
  };
}
