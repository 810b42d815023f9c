import type { AccessLevel, CatalogAction } from "../authz/action-catalog.js";
import {
  ACCESS_LEVELS,
  explainTemplate,
  isWriteLevel,
  type StatementExplanation,
  type TemplateExplanation,
} from "../authz/explain.js";
import { IamDataActionCatalog } from "../authz/iam-data-action-catalog.js";
import type { TaskTemplate } from "../domain/template.js";

/** Above this many actions, a statement prints counts per access level instead of every action. */
const MAX_LISTED = 1000;
/** How many flagged actions the summary names before "… and N more". */
const MAX_NAMED = 20;

/** `jitv templates explain FILE|NAME [--json]`: what the template's session policy grants. */
export async function explainCommand(template: TaskTemplate, json: boolean): Promise<number> {
  const explained = await explainTemplate(template, new IamDataActionCatalog());
  process.stdout.write(json ? `${JSON.stringify(explained, null, 2)}\n` : formatExplanation(explained));
  return 0;
}

/**
 * The explanation as text: per statement its resource patterns and every action, `!!` marking
 * permissions management and `!` write (and tagging) access, then a summary of what is allowed.
 */
export function formatExplanation(e: TemplateExplanation): string {
  const out = [
    `${e.template}: ${e.zone} zone, role ${e.roleArn}`,
    "The session policy only narrows the role's own policies: the task can do at most what follows.",
    `Actions from ${e.data}; !! permissions management, ! write, ? unknown.`,
    "",
  ];
  for (const s of e.statements) out.push(...formatStatement(s));
  out.push("", ...formatSummary(e));
  return `${out.join("\n")}\n`;
}

function formatStatement(s: StatementExplanation): string[] {
  const out = [`statement ${s.index}${s.sid ? ` (${s.sid})` : ""}, ${s.effect}: ${s.meaning}`];
  for (const r of s.resources) out.push(`  ${s.notResource ? "except resource" : "resource"} ${r}`);
  if (s.condition) out.push(`  condition ${JSON.stringify(s.condition)}`);
  const written = s.patterns.map((p) => p.pattern).join(", ");
  out.push(
    s.notAction
      ? `  actions: all but ${written} → ${count(s.actions.length)} documented actions`
      : `  actions: ${written} → ${count(s.actions.length)} documented action${s.actions.length === 1 ? "" : "s"}`,
  );
  if (s.actions.length > MAX_LISTED) {
    const levels = countByLevel(s.actions);
    out.push(
      `    by access level: ${ACCESS_LEVELS.map((l) => `${count(levels[l])} ${l}${isWriteLevel(l) ? ` (${marker(l).trim()})` : ""}`).join(", ")}; --json lists every action`,
    );
  } else {
    for (const a of s.actions) out.push(`  ${marker(a.accessLevel)} ${a.action.padEnd(48)} ${a.accessLevel}`);
  }
  for (const u of s.unknown)
    out.push(`  ?  ${u.padEnd(48)} unknown: no documented action matches, not expanded`);
  return out;
}

function formatSummary(e: TemplateExplanation): string[] {
  const { allowed } = e;
  const levels = ACCESS_LEVELS.filter((l) => allowed.byLevel[l] > 0).map(
    (l) => `${count(allowed.byLevel[l])} ${l}`,
  );
  const flagged = allowed.permissionsManagement.length + allowed.write.length;
  const denies = e.statements.some((s) => s.effect === "Deny") ? " (before the Deny statements above)" : "";
  const out = [
    `summary: allows ${count(allowed.total)} action${allowed.total === 1 ? "" : "s"}${denies}${levels.length ? `: ${levels.join(", ")}` : ""}${flagged === 0 ? "; no write or permissions-management access" : ""}`,
  ];
  if (allowed.permissionsManagement.length > 0)
    out.push(`!! permissions management: ${named(allowed.permissionsManagement)}`);
  if (allowed.write.length > 0) out.push(`!  write: ${named(allowed.write)}`);
  if (e.unknown.length > 0) out.push(`?  unknown, not expanded: ${e.unknown.join(", ")}`);
  return out;
}

function marker(level: AccessLevel): string {
  return level === "Permissions management" ? "!!" : isWriteLevel(level) ? "! " : "  ";
}

function countByLevel(actions: readonly CatalogAction[]): Record<AccessLevel, number> {
  const levels = Object.fromEntries(ACCESS_LEVELS.map((l) => [l, 0])) as Record<AccessLevel, number>;
  for (const a of actions) levels[a.accessLevel]++;
  return levels;
}

function named(actions: readonly string[]): string {
  const shown = actions.slice(0, MAX_NAMED).join(", ");
  return actions.length > MAX_NAMED ? `${shown} … and ${count(actions.length - MAX_NAMED)} more` : shown;
}

function count(n: number): string {
  return n.toLocaleString("en-US");
}
