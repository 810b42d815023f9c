import {
  type DetailedError,
  policySetTextToParts,
  policyToJson,
  validate,
} from "@cedar-policy/cedar-wasm/nodejs";
import { InvalidRequestError } from "../domain/errors.js";
import type { TaskTemplate } from "../domain/template.js";
import { CEDAR_SCHEMA, ENTITY } from "./schema.js";

/** One static policy of a policy set, as the authorizer needs it. */
export interface ParsedPolicy {
  /** The `@id` annotation (unique in the set). */
  readonly id: string;
  readonly effect: "permit" | "forbid";
  /** The `@reason` annotation, shown to a caller the policy forbids. */
  readonly reason?: string;
  /** The policy's Cedar text. */
  readonly text: string;
}

/** What a stored policy's `@id` may look like. */
export const POLICY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** `@id` prefix of the policies compiled from templates' `agents` lists; stored policies may not use it. */
export const COMPILED_POLICY_PREFIX = "template:";
/** Longest policy set text accepted (characters); keeps both stored copies well inside an item. */
export const MAX_POLICY_SET_CHARS = 64 * 1024;

const MAX_REPORTED_ERRORS = 5;
const MAX_MESSAGE_CHARS = 300;

/**
 * Parses and validates a policy set before it is stored: Cedar syntax, static policies only
 * (no templates with slots), an `@id("…")` on every policy matching {@link POLICY_ID_PATTERN},
 * unique, and not in the reserved `template:` space; then Cedar's strict validation against
 * {@link CEDAR_SCHEMA}.
 *
 * @throws InvalidRequestError carrying Cedar's messages (at most five, trimmed), with line and
 *   column for syntax errors
 * @example
 * validatePolicySet('@id("p") forbid(principal, action, resource) when { context.ttlSeconds > 1800 };');
 */
export function validatePolicySet(text: string): ParsedPolicy[] {
  if (text.length > MAX_POLICY_SET_CHARS) {
    throw new InvalidRequestError(`invalid policy set: longer than ${MAX_POLICY_SET_CHARS} characters`);
  }
  const parts = splitPolicies(text);
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const part of parts) {
    const where = `policy \`${snippet(part.text)}\``;
    if (part.id === undefined) problems.push(`${where} needs an @id("…") annotation`);
    else if (!POLICY_ID_PATTERN.test(part.id)) {
      problems.push(`${where}: @id must match ${POLICY_ID_PATTERN.source}`);
    } else if (part.id.startsWith(COMPILED_POLICY_PREFIX)) {
      problems.push(`${where}: @id "${part.id}" is reserved for policies compiled from templates`);
    } else if (seen.has(part.id)) problems.push(`${where}: duplicate @id "${part.id}"`);
    else seen.add(part.id);
  }
  if (problems.length > 0) throw new InvalidRequestError(`invalid policy set: ${joinTrimmed(problems)}`);

  const policies = parts as ParsedPolicy[];
  const answer = validate({
    schema: CEDAR_SCHEMA,
    policies: { staticPolicies: Object.fromEntries(policies.map((p) => [p.id, p.text])) },
    validationSettings: { mode: "strict" },
  });
  if (answer.type === "failure") {
    throw new InvalidRequestError(`invalid policy set: ${formatCedarErrors(answer.errors)}`);
  }
  // The call succeeding says nothing about the policies: their errors are in `validationErrors`.
  if (answer.validationErrors.length > 0) {
    throw new InvalidRequestError(
      `invalid policy set: ${formatCedarErrors(answer.validationErrors.map((e) => e.error))}`,
    );
  }
  return policies;
}

/**
 * Splits policy set text into its policies for the authorizer, which must keep deciding even
 * if a set was stored under other rules: a policy without `@id` is named `policy<n>`, a
 * duplicate id gets a `#<n>` suffix. Syntax is still checked.
 * @throws InvalidRequestError when the text does not parse or holds policy templates
 */
export function loadPolicySet(text: string): ParsedPolicy[] {
  const seen = new Set<string>();
  return splitPolicies(text).map((part, index) => {
    const base = part.id ?? `policy${index}`;
    let id = base;
    for (let n = 2; seen.has(id); n++) id = `${base}#${n}`;
    seen.add(id);
    return { ...part, id };
  });
}

interface PolicyPart {
  readonly id: string | undefined;
  readonly effect: "permit" | "forbid";
  readonly reason?: string;
  readonly text: string;
}

function splitPolicies(text: string): PolicyPart[] {
  const split = policySetTextToParts(text);
  if (split.type === "failure") {
    throw new InvalidRequestError(`invalid policy set: ${formatCedarErrors(split.errors, text)}`);
  }
  if (split.policy_templates.length > 0) {
    throw new InvalidRequestError(
      "invalid policy set: policy templates (`?principal`, `?resource` slots) are not supported; write static policies",
    );
  }
  return split.policies.map((policyText) => {
    const json = policyToJson(policyText);
    if (json.type === "failure") {
      throw new InvalidRequestError(`invalid policy set: ${formatCedarErrors(json.errors, policyText)}`);
    }
    const annotations: Record<string, string | null> = json.json.annotations ?? {};
    const id = annotations.id ?? undefined;
    const reason = annotations.reason ?? undefined;
    return {
      id: id === undefined || id === "" ? undefined : id,
      effect: json.json.effect,
      ...(reason === undefined || reason === "" ? {} : { reason }),
      text: policyText,
    };
  });
}

/**
 * A Cedar string literal holding exactly `value`: quotes and backslashes escaped, control and
 * line-breaking characters as `\u{…}`, so no value can end the literal or the policy.
 * @example cedarString('a"b') // => '"a\\"b"'
 */
export function cedarString(value: string): string {
  let out = '"';
  for (const ch of value) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp === 0x2028 || cp === 0x2029) {
      out += `\\u{${cp.toString(16)}}`;
    } else out += ch;
  }
  return `${out}"`;
}

/**
 * The Cedar entity id of an agent or user: `<issuer>|<id>`, with `%` and `|` in the issuer
 * percent-encoded so the first `|` always ends the issuer and no two principals share an id.
 * @example principalEntityId("https://idp.example", "agent-a") // => "https://idp.example|agent-a"
 */
export function principalEntityId(issuer: string, id: string): string {
  return `${issuer.replaceAll("%", "%25").replaceAll("|", "%7C")}|${id}`;
}

/** `@id` of the policy compiled from a template's `agents` list. */
export function agentsPolicyId(templateName: string): string {
  return `${COMPILED_POLICY_PREFIX}${templateName}:agents`;
}

/**
 * Compiles a template's `agents` list (the simple form of authorization) into one Cedar policy
 * permitting exactly the listed agents to `Vend` from this template, so one engine decides
 * everything and forbid policies apply to listed agents too. Every value is escaped with
 * {@link cedarString}.
 *
 * @returns `undefined` when the list is empty: then only stored policies can permit a vend
 * @example
 * compileAgentsPolicy(template);
 * // @id("template:reports-read:agents")
 * // permit (principal is Jitv::Agent, action == Jitv::Action::"Vend", resource == Jitv::Template::"reports-read")
 * // when { [Jitv::Agent::"https://issuer.example|agent-a"].contains(principal) };
 */
export function compileAgentsPolicy(template: Pick<TaskTemplate, "name" | "agents">): string | undefined {
  const agents = template.agents.flatMap((entry) =>
    entry.subjects.map(
      (subject) => `${ENTITY.agent}::${cedarString(principalEntityId(entry.issuer, subject))}`,
    ),
  );
  if (agents.length === 0) return undefined;
  return [
    `@id(${cedarString(agentsPolicyId(template.name))})`,
    `permit (principal is ${ENTITY.agent}, action == ${ENTITY.action}::"Vend", resource == ${ENTITY.template}::${cedarString(template.name)})`,
    `when { [${agents.join(", ")}].contains(principal) };`,
  ].join("\n");
}

/**
 * Cedar's diagnostics as one line: `line L, column C: message (help); …`, at most five, each
 * trimmed. `source` (the text that was parsed) turns Cedar's byte offsets into line and column.
 */
export function formatCedarErrors(errors: readonly DetailedError[], source?: string): string {
  if (errors.length === 0) return "rejected by Cedar";
  // The validator reports one error per action a policy applies to; show each problem once.
  const byProblem = new Map<string, { text: string; actions: number }>();
  for (const e of errors) {
    const location = e.sourceLocations?.[0];
    const at = source !== undefined && location ? `${lineColumn(source, location.start)}: ` : "";
    const label = location?.label ? `; ${location.label}` : "";
    const help = e.help ? ` (${e.help})` : "";
    const text = `${at}${e.message}${label}${help}`;
    const key = text.replace(/Jitv::Action::"[^"]*"/g, "");
    const seen = byProblem.get(key);
    if (seen) seen.actions++;
    else byProblem.set(key, { text, actions: 1 });
  }
  return joinTrimmed(
    [...byProblem.values()].map(({ text, actions }) =>
      actions > 1 ? `${text} (and for ${actions - 1} more ${actions === 2 ? "action" : "actions"})` : text,
    ),
  );
}

function joinTrimmed(messages: readonly string[]): string {
  const shown = messages.slice(0, MAX_REPORTED_ERRORS).map((m) => trim(m.replace(/\s+/g, " ").trim()));
  const more = messages.length - shown.length;
  return shown.join("; ") + (more > 0 ? `; and ${more} more` : "");
}

function trim(message: string): string {
  return message.length <= MAX_MESSAGE_CHARS ? message : `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…`;
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= 60 ? flat : `${flat.slice(0, 59)}…`;
}

/** Cedar reports UTF-8 byte offsets. */
function lineColumn(source: string, byteOffset: number): string {
  const prefix = new TextDecoder().decode(new TextEncoder().encode(source).subarray(0, byteOffset));
  const lines = prefix.split("\n");
  return `line ${lines.length}, column ${(lines.at(-1) ?? "").length + 1}`;
}
