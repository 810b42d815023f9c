import { ForbiddenError, InvalidRequestError } from "./errors.js";
import { STS_LIMITS } from "./sts.js";
import type { TaskTemplate, TemplateParameter } from "./template.js";

/**
 * Template rendering and its limits (CONTRACT.md section 4). Values reach a session policy
 * only from verified claims or from parameters that match their declared `pattern`/`enum`;
 * both are checked again here for the characters that could change what an IAM policy
 * means (wildcards, policy variables, JSON structure, line breaks), whatever a template's
 * own pattern allows.
 */

/** Longest parameter value when the template does not say (`parameters.NAME.maxLength`). */
export const DEFAULT_PARAMETER_MAX_LENGTH = 64;

/** Longest tenant, user or agent id jitv renders into a policy (a claim, not a parameter). */
export const MAX_IDENTITY_VALUE_LENGTH = 256;

/**
 * The placeholders filled from the task and its verified identities; the only other kind is
 * `{{params.NAME}}`. Rendering and {@link lintTemplate} both read this one table:
 * `worstCaseLength` is the value length assumed by the put-time worst-case size check, and
 * `customerZoneOnly` marks the placeholders only delegated (customer-zone) tasks can fill.
 */
export const IDENTITY_PLACEHOLDERS = {
  tenant: { worstCaseLength: 64, customerZoneOnly: true },
  user: { worstCaseLength: 64, customerZoneOnly: true },
  agent: { worstCaseLength: 64, customerZoneOnly: false },
  task: { worstCaseLength: 30, customerZoneOnly: false },
} as const;

/** `tenant`, `user`, `agent` or `task`: a placeholder of {@link IDENTITY_PLACEHOLDERS}. */
export type IdentityPlaceholder = keyof typeof IDENTITY_PLACEHOLDERS;

function isIdentityPlaceholder(placeholder: string): placeholder is IdentityPlaceholder {
  return Object.hasOwn(IDENTITY_PLACEHOLDERS, placeholder);
}

/** Which identity value a check is about; named in errors, the value never is. */
export type IdentityValueKind = "tenant" | "user" | "agent";

/** The values a session policy is rendered from. `user`/`tenant` exist for delegated tasks only. */
export interface RenderValues {
  readonly task: string;
  readonly agent: string;
  readonly user?: string;
  readonly tenant?: string;
  /** Parameters as returned by {@link validateParameters}. */
  readonly params: Readonly<Record<string, string>>;
}

// Control characters: C0, DEL, C1, and the two JavaScript line terminators outside C0.
const CONTROL_CHARS = "\\u0000-\\u001F\\u007F-\\u009F\\u2028\\u2029";
/** Wildcards, IAM policy variables, JSON quoting/escaping and control characters. */
const UNSAFE_PARAMETER_CHAR = new RegExp(`[*?\${}"\\\\${CONTROL_CHARS}]`, "u");
/** As for parameters, plus `/`: a claim must never widen a resource path. */
const UNSAFE_IDENTITY_CHAR = new RegExp(`[*?\${}"/\\\\${CONTROL_CHARS}]`, "u");

const PLACEHOLDER = /\{\{([^{}]*)\}\}/g;
/** IAM's wildcards. */
const IAM_WILDCARD = /[*?]/;
/** IAM's escapes `${*}`, `${?}` and `${$}`: the characters themselves, never wildcards. */
const IAM_ESCAPE = /\$\{[*?$]\}/g;
/** Any other IAM `${…}`: a policy variable such as `${aws:username}`, perhaps with a default. */
const IAM_VARIABLE = /\$\{[^}]*\}/g;
/**
 * What bounds an identity value for the wildcard check: `/` alone, the one character no
 * tenant, user or agent value may hold (task ids hold neither `/` nor `:`). `:` does not count, ARN
 * field separator though it is: those values may contain `:`, so with `b/{{tenant}}:*` tenant
 * `acme` would reach the objects of tenant `acme:corp`, and with `arn:aws:sqs:*:*:{{tenant}}`
 * tenant `corp` would match the name `acme:corp`.
 */
const SEGMENT_SEPARATOR = "/";
const PARAMS_PLACEHOLDER = /^params\.([A-Za-z][A-Za-z0-9_]{0,31})$/;
/** A `{{…}}` inside an IAM `${…}` variable could assemble a policy variable from a value. */
const PLACEHOLDER_IN_IAM_VARIABLE = /\$\{[^}]*\{\{/;
const PARAMETER_NAME = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
/** STS counts session policy characters after whitespace removal. */
const WHITESPACE = /\s/g;
/** Policy characters STS accepts: tab, line feed, carriage return and U+0020–U+00FF. */
const POLICY_TEXT = /^[\t\n\r\u0020-\u00FF]*$/;

/**
 * Checks a request's `parameters` against the template's declarations.
 *
 * Every declared parameter is required and undeclared ones are refused. A value must be a
 * non-empty string no longer than `maxLength` (default 64), be one of `enum` or match
 * `pattern` (always matched as a whole: the pattern is wrapped in `^(?:…)$`), and never
 * holds `*`, `?`, `$`, `{`, `}`, `"`, `\` or a control character, even when the pattern
 * would allow them. Empty values are refused because `…/{{params.prefix}}*` would
 * otherwise grant the whole bucket.
 *
 * @returns the declared parameters, as strings
 * @throws InvalidRequestError naming the parameter, never echoing its value
 * @example
 * validateParameters(template, { prefix: "q3" }); // → { prefix: "q3" }
 * validateParameters(template, { prefix: "q3/*" }); // throws: parameter "prefix" …
 */
export function validateParameters(
  template: TaskTemplate,
  input: Record<string, unknown> | undefined,
): Record<string, string> {
  const declared = template.parameters ?? {};
  const given = input ?? {};
  if (typeof given !== "object" || given === null || Array.isArray(given)) {
    throw new InvalidRequestError("parameters must be a JSON object");
  }
  for (const name of Object.keys(given)) {
    if (!Object.hasOwn(declared, name)) {
      // The name came from the caller: echo it only when it is a plausible parameter name.
      throw new InvalidRequestError(
        PARAMETER_NAME.test(name)
          ? `parameter "${name}" is not declared by template "${template.name}"`
          : `an undeclared parameter was given to template "${template.name}"`,
      );
    }
  }
  const values: Record<string, string> = {};
  for (const [name, declaration] of Object.entries(declared)) {
    if (!Object.hasOwn(given, name) || given[name] === undefined) {
      throw new InvalidRequestError(`parameter "${name}" is required`);
    }
    values[name] = checkParameterValue(name, declaration, given[name]);
  }
  return values;
}

function checkParameterValue(name: string, declaration: TemplateParameter, value: unknown): string {
  if (typeof value !== "string") throw new InvalidRequestError(`parameter "${name}" must be a string`);
  if (value.length === 0) throw new InvalidRequestError(`parameter "${name}" must not be empty`);
  const maxLength = declaration.maxLength ?? DEFAULT_PARAMETER_MAX_LENGTH;
  if (value.length > maxLength) {
    throw new InvalidRequestError(`parameter "${name}" is longer than ${maxLength} characters`);
  }
  if (UNSAFE_PARAMETER_CHAR.test(value)) {
    throw new InvalidRequestError(
      `parameter "${name}" contains a character that is never allowed (* ? $ { } " \\ or a control character)`,
    );
  }
  if (declaration.enum !== undefined) {
    if (!declaration.enum.includes(value)) {
      throw new InvalidRequestError(`parameter "${name}" must be one of the template's allowed values`);
    }
  } else if (declaration.pattern !== undefined) {
    if (!compilePattern(declaration.pattern, `parameter "${name}"`).test(value)) {
      throw new InvalidRequestError(`parameter "${name}" does not match its declared pattern`);
    }
  } else {
    throw new InvalidRequestError(`parameter "${name}" has neither a pattern nor an enum`);
  }
  return value;
}

const compiledPatterns = new Map<string, RegExp>();
const MAX_COMPILED_PATTERNS = 1000;

/** Compiles a parameter pattern once, whole-value anchored, with Unicode semantics. */
function compilePattern(pattern: string, what: string): RegExp {
  const cached = compiledPatterns.get(pattern);
  if (cached !== undefined) return cached;
  let compiled: RegExp;
  try {
    compiled = new RegExp(`^(?:${pattern})$`, "u");
  } catch {
    throw new InvalidRequestError(`${what} has a pattern that is not a valid regular expression`);
  }
  if (compiledPatterns.size >= MAX_COMPILED_PATTERNS) compiledPatterns.clear();
  compiledPatterns.set(pattern, compiled);
  return compiled;
}

/**
 * Refuses a tenant, user or agent id that could change a policy's meaning: empty, longer
 * than 256 characters, or holding `*`, `?`, `$`, `{`, `}`, `"`, `/`, `\` or a control
 * character (U+0000–U+001F, U+007F–U+009F, U+2028, U+2029).
 *
 * These values come from verified tokens, so a refusal means the token's issuer vouches
 * for a value jitv will not render: `403 forbidden`.
 *
 * @throws ForbiddenError naming the kind of value, never the value
 * @example
 * assertSafeIdentityValue("tenant", "acme"); // ok
 * assertSafeIdentityValue("tenant", "*"); // throws ForbiddenError("unsafe tenant claim")
 */
export function assertSafeIdentityValue(kind: IdentityValueKind, value: string): void {
  if (typeof value !== "string" || value.length === 0) {
    throw new ForbiddenError(`missing or empty ${describeIdentity(kind)}`);
  }
  if (value.length > MAX_IDENTITY_VALUE_LENGTH || UNSAFE_IDENTITY_CHAR.test(value)) {
    throw new ForbiddenError(`unsafe ${describeIdentity(kind)}`);
  }
}

function describeIdentity(kind: IdentityValueKind): string {
  return kind === "agent" ? "agent id" : `${kind} claim`;
}

/**
 * Refuses a session policy STS would refuse for its size: more than 2,048 characters once
 * whitespace is removed.
 * @throws InvalidRequestError
 */
export function assertPolicySize(policy: string): void {
  const size = policy.replace(WHITESPACE, "").length;
  if (size > STS_LIMITS.maxPolicyChars) {
    throw new InvalidRequestError(
      `session policy is ${size} characters without whitespace; STS allows at most ${STS_LIMITS.maxPolicyChars}`,
    );
  }
}

/**
 * Refuses a session policy holding characters STS does not accept in `Policy`: anything but
 * tab, line feed, carriage return and U+0020–U+00FF (so a claim such as a tenant name in
 * CJK script renders, but cannot be sent).
 * @throws InvalidRequestError
 */
export function assertPolicyCharacters(policy: string): void {
  if (!POLICY_TEXT.test(policy)) {
    throw new InvalidRequestError(
      "session policy holds characters STS does not accept (only tab, line breaks and U+0020–U+00FF)",
    );
  }
}

/**
 * Renders a template's session policy for one task.
 *
 * `{{tenant}}`, `{{user}}`, `{{agent}}`, `{{task}}` and `{{params.NAME}}` are substituted in
 * string values only, never in keys; IAM's own `${aws:…}` variables pass through untouched.
 * A claim-derived value is checked with {@link assertSafeIdentityValue} when, and only when,
 * its placeholder is used, so a workforce task without a tenant claim is not refused for it.
 * Parameter values are re-checked for the characters {@link validateParameters} refuses.
 *
 * @returns compact JSON, at most 2,048 characters without whitespace
 * @throws ForbiddenError for a missing or unsafe tenant, user or agent value
 * @throws InvalidRequestError for a missing or unsafe parameter, a leftover placeholder,
 *   a policy over STS's size limit or holding characters STS refuses
 * @example
 * renderSessionPolicy(template, { task: "tsk_1", agent: "agent-a", tenant: "acme", params: { prefix: "q3" } });
 * // → '{"Version":"2012-10-17","Statement":[{…"Resource":["arn:aws:s3:::reports/acme/q3/*"]}]}'
 */
export function renderSessionPolicy(template: TaskTemplate, values: RenderValues): string {
  const checked = new Map<string, string>();
  const resolve = (placeholder: string): string => {
    const known = checked.get(placeholder);
    if (known !== undefined) return known;
    const value = resolvePlaceholder(placeholder, values);
    checked.set(placeholder, value);
    return value;
  };
  const rendered = substituteTree(template.sessionPolicy, "sessionPolicy", resolve);
  const policy = JSON.stringify(rendered);
  assertPolicyCharacters(policy);
  assertPolicySize(policy);
  return policy;
}

function resolvePlaceholder(placeholder: string, values: RenderValues): string {
  if (isIdentityPlaceholder(placeholder)) return resolveIdentityPlaceholder(placeholder, values);
  const name = PARAMS_PLACEHOLDER.exec(placeholder)?.[1];
  if (name === undefined) throw new InvalidRequestError("session policy has an unknown placeholder");
  const value = Object.hasOwn(values.params, name) ? values.params[name] : undefined;
  if (value === undefined || value.length === 0) {
    throw new InvalidRequestError(`parameter "${name}" is required`);
  }
  if (UNSAFE_PARAMETER_CHAR.test(value)) {
    throw new InvalidRequestError(`parameter "${name}" contains a character that is never allowed`);
  }
  return value;
}

function resolveIdentityPlaceholder(placeholder: IdentityPlaceholder, values: RenderValues): string {
  switch (placeholder) {
    case "tenant":
    case "user":
    case "agent": {
      const value = values[placeholder];
      if (value === undefined) throw new ForbiddenError(`missing ${describeIdentity(placeholder)}`);
      assertSafeIdentityValue(placeholder, value);
      return value;
    }
    case "task":
      // Task ids are generated by jitv; the same charset as the role session name they become.
      if (!/^[\w+=,.@-]{2,64}$/.test(values.task)) {
        throw new InvalidRequestError("task id is not a valid role session name");
      }
      return values.task;
  }
}

/** Returns the value for a placeholder (the text between the braces) found at `path`. */
type Resolver = (placeholder: string, path: string) => string;

/**
 * Copies a JSON tree, substituting placeholders in string values. Refuses placeholder-like
 * text in keys, text left over after substitution, placeholders inside `${…}`, and `*` or
 * `?` in the same `/`-separated segment as an identity placeholder.
 */
function substituteTree(node: unknown, path: string, resolve: Resolver): unknown {
  if (typeof node === "string") return substituteString(node, path, resolve);
  if (Array.isArray(node)) return node.map((item, i) => substituteTree(item, `${path}[${i}]`, resolve));
  if (typeof node === "object" && node !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      if (key.includes("{{") || key.includes("}}")) {
        throw new InvalidRequestError(`${path}: placeholders are not allowed in keys`);
      }
      out[key] = substituteTree(value, `${path}.${key}`, resolve);
    }
    return out;
  }
  return node;
}

function substituteString(text: string, path: string, resolve: Resolver): string {
  if (PLACEHOLDER_IN_IAM_VARIABLE.test(text)) {
    throw new InvalidRequestError(`${path}: a placeholder must not appear inside an IAM \${…} variable`);
  }
  const withoutPlaceholders = text.replace(PLACEHOLDER, "");
  if (withoutPlaceholders.includes("{{") || withoutPlaceholders.includes("}}")) {
    throw new InvalidRequestError(`${path}: unbalanced placeholder braces`);
  }
  assertNoWildcardInIdentitySegment(text, path);
  return text.replace(PLACEHOLDER, (_match, placeholder: string) => resolve(placeholder, path));
}

/**
 * Refuses `*` or `?` anywhere in the same segment as an identity placeholder, a segment
 * running from the previous `/` (or the start) to the next `/` (or the end). Ids are not
 * prefix- or suffix-free: with `reports/{{tenant}}-*` or `bucket-{{tenant}}-*`, tenant `acme`
 * would reach `acme-corp`'s resources; with `reports/*-{{tenant}}`, tenant `corp` would reach
 * `acme-corp`'s. Only a `/` (which no identity value may hold, see {@link SEGMENT_SEPARATOR})
 * keeps the value whole: `{{tenant}}/*` is fine, and so is a wildcard in another segment.
 * IAM's escapes `${*}`, `${?}`, `${$}` are literals; any other `${…}` is scanned as one opaque
 * run of text whose `/`s do not separate but whose `*` or `?` still counts. Parameters may be
 * followed by a wildcard (`{{params.prefix}}*`), a prefix being what they are declared for,
 * but not in an identity placeholder's segment (`{{tenant}}-{{params.prefix}}*` would let
 * tenant `acme` with prefix `q3` reach tenant `acme-q3x`).
 */
function assertNoWildcardInIdentitySegment(text: string, path: string): void {
  const scanned = text
    .replace(IAM_ESCAPE, "_")
    .replace(IAM_VARIABLE, (variable) => variable.replaceAll(SEGMENT_SEPARATOR, "_"));
  for (const segment of scanned.split(SEGMENT_SEPARATOR)) {
    const name = identityPlaceholderIn(segment);
    if (name === undefined || !IAM_WILDCARD.test(segment.replace(PLACEHOLDER, ""))) continue;
    throw new InvalidRequestError(
      `${path}: a wildcard (* or ?) in the same path segment as {{${name}}} would let one ${name} value match others (e.g. acme matching acme-corp); put a "/" between them, as in {{${name}}}/* (":" does not separate: ${name} values may contain it)`,
    );
  }
}

/** The first identity placeholder in `text`, if any. */
function identityPlaceholderIn(text: string): IdentityPlaceholder | undefined {
  for (const match of text.matchAll(PLACEHOLDER)) {
    const name = match[1] ?? "";
    if (isIdentityPlaceholder(name)) return name;
  }
  return undefined;
}

/**
 * The put-time semantic checks of a template that {@link parseTemplate} cannot express:
 *
 * - every `{{…}}` is a known placeholder, with `{{tenant}}`/`{{user}}` only in customer-zone
 *   templates and `{{params.NAME}}` only for declared parameters;
 * - no placeholder in a key, no leftover `{{`/`}}`, no placeholder inside an IAM `${…}`;
 * - no `*` or `?` in the same `/`-separated segment as `{{tenant}}`, `{{user}}`, `{{agent}}`
 *   or `{{task}}` (`{{tenant}}-*` would let tenant `acme` match `acme-corp`; `:` does not
 *   separate, since those values may contain it); IAM's `${*}`, `${?}`, `${$}` are literals;
 * - every parameter `pattern` compiles (Unicode mode), starts with `^` and ends with `$`;
 *   every `enum` value is renderable and within `maxLength`;
 * - the policy text holds only characters STS accepts (U+0020–U+00FF, tab, line breaks);
 * - the worst-case rendering (tenant, user and agent 64 characters, task id 30, each
 *   parameter its `maxLength` or longest `enum` value) fits STS's 2,048-character limit.
 *
 * Claims up to 256 characters are accepted at vend time, so a template near the limit can
 * still be refused for one long tenant; the render-time size check covers that.
 *
 * @throws InvalidRequestError naming the offending field
 * @example
 * lintTemplate(parseTemplate(json)); // throws e.g. "sessionPolicy.Statement[0].Resource[0]: unknown placeholder {{tenat}}"
 */
export function lintTemplate(template: TaskTemplate): void {
  const parameters = template.parameters ?? {};
  for (const [name, declaration] of Object.entries(parameters)) lintParameter(name, declaration);

  const worstCase = (placeholder: string, path: string): string => {
    if (isIdentityPlaceholder(placeholder)) {
      const { customerZoneOnly, worstCaseLength } = IDENTITY_PLACEHOLDERS[placeholder];
      if (customerZoneOnly && template.zone !== "customer") {
        throw new InvalidRequestError(
          `${path}: {{${placeholder}}} is only available in customer-zone templates`,
        );
      }
      return "x".repeat(worstCaseLength);
    }
    const name = PARAMS_PLACEHOLDER.exec(placeholder)?.[1];
    if (name === undefined) {
      throw new InvalidRequestError(`${path}: unknown placeholder {{${printable(placeholder)}}}`);
    }
    const declaration = Object.hasOwn(parameters, name) ? parameters[name] : undefined;
    if (declaration === undefined) {
      throw new InvalidRequestError(`${path}: {{params.${name}}} names an undeclared parameter`);
    }
    return "x".repeat(worstCaseParameterLength(declaration));
  };

  const rendered = JSON.stringify(substituteTree(template.sessionPolicy, "sessionPolicy", worstCase));
  if (!POLICY_TEXT.test(rendered)) {
    throw new InvalidRequestError(
      "sessionPolicy: holds characters STS does not accept (only tab, line breaks and U+0020–U+00FF)",
    );
  }
  const size = rendered.replace(WHITESPACE, "").length;
  if (size > STS_LIMITS.maxPolicyChars) {
    throw new InvalidRequestError(
      `sessionPolicy: template can never fit STS's session policy limit (worst case ${size} characters without whitespace; at most ${STS_LIMITS.maxPolicyChars})`,
    );
  }
}

function lintParameter(name: string, declaration: TemplateParameter): void {
  const field = `parameters.${name}`;
  const maxLength = declaration.maxLength ?? DEFAULT_PARAMETER_MAX_LENGTH;
  if (declaration.pattern !== undefined) {
    const pattern = declaration.pattern;
    if (!pattern.startsWith("^") || !endsWithUnescapedDollar(pattern)) {
      throw new InvalidRequestError(`${field}.pattern: must be anchored, starting with ^ and ending with $`);
    }
    try {
      new RegExp(pattern, "u");
    } catch {
      throw new InvalidRequestError(`${field}.pattern: not a valid regular expression (Unicode mode)`);
    }
  }
  for (const value of declaration.enum ?? []) {
    if (UNSAFE_PARAMETER_CHAR.test(value) || !POLICY_TEXT.test(value)) {
      throw new InvalidRequestError(
        `${field}.enum: values must not contain * ? $ { } " \\, control characters or characters above U+00FF`,
      );
    }
    if (value.length > maxLength) {
      throw new InvalidRequestError(
        `${field}.enum: a value is longer than the parameter's maxLength (${maxLength})`,
      );
    }
  }
}

function endsWithUnescapedDollar(pattern: string): boolean {
  if (!pattern.endsWith("$")) return false;
  let backslashes = 0;
  for (let i = pattern.length - 2; i >= 0 && pattern[i] === "\\"; i--) backslashes++;
  return backslashes % 2 === 0;
}

function worstCaseParameterLength(declaration: TemplateParameter): number {
  if (declaration.enum !== undefined) return Math.max(...declaration.enum.map((v) => v.length));
  return declaration.maxLength ?? DEFAULT_PARAMETER_MAX_LENGTH;
}

/** Template text is admin-authored but may still hold control characters; keep errors one line. */
function printable(text: string): string {
  const clean = text.replace(new RegExp(`[${CONTROL_CHARS}]`, "gu"), "?");
  return clean.length > 40 ? `${clean.slice(0, 40)}…` : clean;
}
