import type { TaskTemplate } from "../domain/template.js";
import type { AccessLevel, ActionCatalog, CatalogAction } from "./action-catalog.js";

/** One `Action` / `NotAction` entry and the documented actions it names. */
export interface ExpandedPattern {
  readonly pattern: string;
  /** Sorted; empty when the pattern names nothing documented (see {@link StatementExplanation.unknown}). */
  readonly actions: readonly CatalogAction[];
}

export interface StatementExplanation {
  /** 1-based position in the session policy. */
  readonly index: number;
  readonly sid?: string;
  readonly effect: "Allow" | "Deny";
  /** The statement lists `NotAction`: it applies to every action *except* its patterns. */
  readonly notAction: boolean;
  readonly patterns: readonly ExpandedPattern[];
  /**
   * The documented actions the statement applies to, sorted: the patterns' union, or for
   * `NotAction` every documented action that none of them names.
   */
  readonly actions: readonly CatalogAction[];
  /** Patterns naming no documented action (a typo, an unknown service, a placeholder): shown, not expanded. */
  readonly unknown: readonly string[];
  /** The resource patterns as written (placeholders such as `{{tenant}}` unrendered). */
  readonly resources: readonly string[];
  /** The statement lists `NotResource`: it applies to every resource *except* `resources`. */
  readonly notResource: boolean;
  readonly condition?: Readonly<Record<string, Readonly<Record<string, string | readonly string[]>>>>;
  /** What the statement does, in one sentence. */
  readonly meaning: string;
}

/** What a template's session policy grants, action by action (`jitv templates explain`). */
export interface TemplateExplanation {
  readonly template: string;
  readonly zone: string;
  readonly roleArn: string;
  /** The edition of the IAM data the wildcards were expanded with. */
  readonly data: string;
  readonly statements: readonly StatementExplanation[];
  /**
   * The Allow statements' actions, each counted once. Deny statements are not subtracted: they
   * may be narrower (other resources, conditions), so they are explained next to the grant instead.
   */
  readonly allowed: {
    readonly total: number;
    readonly byLevel: Readonly<Record<AccessLevel, number>>;
    /** Actions that change who may do what (policies, grants, roles): the riskiest kind. */
    readonly permissionsManagement: readonly string[];
    /** Actions that create, change or delete resources or their tags. */
    readonly write: readonly string[];
  };
  /** Every pattern that named no documented action, once. */
  readonly unknown: readonly string[];
}

/** Access levels, riskiest first (the order explanations print them in). */
export const ACCESS_LEVELS: readonly AccessLevel[] = [
  "Permissions management",
  "Write",
  "Tagging",
  "Read",
  "List",
];

/** True for the levels `explain` flags: anything that changes access, resources or tags. */
export function isWriteLevel(level: AccessLevel): boolean {
  return level === "Write" || level === "Tagging" || level === "Permissions management";
}

/**
 * Expands every `Action` / `NotAction` wildcard of the template's session policy into the
 * documented IAM actions it names, with their access levels. IAM matches actions without regard
 * to case, `*` standing for any characters and `?` for one, also in the service prefix.
 * @example
 * const explained = await explainTemplate(template, new IamDataActionCatalog());
 * explained.statements[0]?.actions; // [{ action: "s3:GetObject", accessLevel: "Read" }, …]
 */
export async function explainTemplate(
  template: TaskTemplate,
  catalog: ActionCatalog,
): Promise<TemplateExplanation> {
  const statements: StatementExplanation[] = [];
  for (const [i, statement] of template.sessionPolicy.Statement.entries()) {
    const notAction = statement.NotAction !== undefined;
    const written = list(statement.NotAction ?? statement.Action);
    const patterns = await Promise.all(
      written.map(async (pattern) => ({ pattern, actions: await expand(pattern, catalog) })),
    );
    const named = union(patterns.map((p) => p.actions));
    const actions = notAction ? await complement(named, catalog) : named;
    const notResource = statement.NotResource !== undefined;
    const resources = list(statement.NotResource ?? statement.Resource);
    statements.push({
      index: i + 1,
      ...(statement.Sid ? { sid: statement.Sid } : {}),
      effect: statement.Effect,
      notAction,
      patterns,
      actions,
      unknown: patterns.filter((p) => p.actions.length === 0).map((p) => p.pattern),
      resources,
      notResource,
      ...(statement.Condition ? { condition: statement.Condition } : {}),
      meaning: meaningOf(
        statement.Effect,
        notAction,
        notResource,
        resources,
        statement.Condition !== undefined,
      ),
    });
  }
  const allowed = union(statements.filter((s) => s.effect === "Allow").map((s) => s.actions));
  const byLevel = Object.fromEntries(ACCESS_LEVELS.map((level) => [level, 0])) as Record<AccessLevel, number>;
  for (const a of allowed) byLevel[a.accessLevel]++;
  return {
    template: template.name,
    zone: template.zone,
    roleArn: template.roleArn,
    data: await catalog.version(),
    statements,
    allowed: {
      total: allowed.length,
      byLevel,
      permissionsManagement: allowed
        .filter((a) => a.accessLevel === "Permissions management")
        .map((a) => a.action),
      write: allowed
        .filter((a) => a.accessLevel === "Write" || a.accessLevel === "Tagging")
        .map((a) => a.action),
    },
    unknown: [...new Set(statements.flatMap((s) => s.unknown))],
  };
}

/** The documented actions one pattern names; empty for a malformed or unknown one. */
async function expand(pattern: string, catalog: ActionCatalog): Promise<CatalogAction[]> {
  const colon = pattern.indexOf(":");
  if (pattern !== "*" && colon < 1) return [];
  const [service, name] = pattern === "*" ? ["*", "*"] : [pattern.slice(0, colon), pattern.slice(colon + 1)];
  const services = hasWildcard(service)
    ? (await catalog.services()).filter((s) => globRegExp(service).test(s))
    : [service];
  const matchName = globRegExp(name);
  const found: CatalogAction[] = [];
  for (const s of services) {
    for (const a of (await catalog.actions(s)) ?? []) {
      if (matchName.test(a.action.slice(a.action.indexOf(":") + 1))) found.push(a);
    }
  }
  return sorted(found);
}

/** Every documented action not in `named` (a `NotAction` statement's reach). */
async function complement(named: readonly CatalogAction[], catalog: ActionCatalog): Promise<CatalogAction[]> {
  const excluded = new Set(named.map((a) => a.action.toLowerCase()));
  const all: CatalogAction[] = [];
  for (const service of await catalog.services()) {
    for (const a of (await catalog.actions(service)) ?? []) {
      if (!excluded.has(a.action.toLowerCase())) all.push(a);
    }
  }
  return sorted(all);
}

function meaningOf(
  effect: "Allow" | "Deny",
  notAction: boolean,
  notResource: boolean,
  resources: readonly string[],
  conditional: boolean,
): string {
  const where = notResource
    ? "on every resource but the listed ones"
    : resources.includes("*")
      ? "on every resource"
      : "on the listed resources";
  const when = conditional ? ", only while the condition holds" : "";
  if (effect === "Allow") {
    return notAction
      ? `allows every action but the listed ones ${where}${when}, including actions AWS adds later`
      : `allows the listed actions ${where}${when}`;
  }
  return notAction
    ? `denies every action but the listed ones ${where}${when}: there the session can do at most the listed actions, and only those an Allow statement grants`
    : `denies the listed actions ${where}${when}, whatever any Allow statement grants`;
}

function list(value: string | readonly string[] | undefined): string[] {
  return value === undefined ? [] : typeof value === "string" ? [value] : [...value];
}

function union(groups: readonly (readonly CatalogAction[])[]): CatalogAction[] {
  const byName = new Map<string, CatalogAction>();
  for (const group of groups) for (const a of group) byName.set(a.action.toLowerCase(), a);
  return sorted([...byName.values()]);
}

function sorted(actions: CatalogAction[]): CatalogAction[] {
  return actions.sort((a, b) => (a.action < b.action ? -1 : a.action > b.action ? 1 : 0));
}

function hasWildcard(pattern: string): boolean {
  return /[*?]/.test(pattern);
}

/** IAM's action matching: case-insensitive, `*` any run of characters, `?` exactly one. */
function globRegExp(pattern: string): RegExp {
  const source = [...pattern]
    .map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
    .join("");
  return new RegExp(`^${source}$`, "i");
}
