import { createHash } from "node:crypto";
import type { CfnElement } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

/** Constructs whose ids stay out of their resources' logical ids (see {@link flattenLogicalIds}). */
const FLATTENED = new WeakSet<IConstruct>();
/** Constructs whose id counts as another one in logical ids (see {@link keepIdInLogicalIds}). */
const RENAMED = new WeakMap<IConstruct, () => string>();

/**
 * Keeps `construct`'s id out of the logical ids of the resources below it, in a stack that
 * allocates them with {@link flattenedLogicalId}. The vending stack was one constructor before it
 * was split into constructs: had the split added a path segment, every logical id would have
 * changed, and CloudFormation would replace the deployed resources (a new, empty table; new roles
 * while teams' trust policies name the old ones). In any other stack the construct is an ordinary one.
 */
export function flattenLogicalIds(construct: IConstruct): void {
  FLATTENED.add(construct);
}

/**
 * The logical id CDK would allocate to `element` if the flattened constructs above it did not
 * exist: CDK's own algorithm (`makeUniqueId`, which aws-cdk-lib does not export) on the path
 * below the stack without their ids. test/infra/logical-ids.test.ts holds it to the ids of the
 * deployed, pre-split stack.
 */
export function flattenedLogicalId(element: CfnElement): string {
  const scopes = element.node.scopes;
  const components = scopes
    .slice(scopes.indexOf(element.stack) + 1)
    .filter((scope) => !FLATTENED.has(scope))
    .map((scope) => RENAMED.get(scope)?.() ?? scope.node.id);
  return makeUniqueId(components);
}

/**
 * Makes `construct` count as id `id()` (evaluated when logical ids are allocated) in
 * {@link flattenedLogicalId}: for the constructs CDK names after another construct's unique id
 * (an event source mapping after its table's), which flattening does not reach.
 */
export function keepIdInLogicalIds(construct: IConstruct, id: () => string): void {
  RENAMED.set(construct, id);
}

/**
 * `Names.nodeUniqueId(construct)` as it was before the flattened constructs existed.
 */
export function flattenedUniqueId(construct: IConstruct): string {
  return makeUniqueId(
    construct.node.scopes
      .slice(1)
      .filter((scope) => !FLATTENED.has(scope))
      .map((scope) => scope.node.id),
  );
}

// aws-cdk-lib core/lib/private/uniqueid.ts: `Default` ids are hidden, `Resource` only from the
// human part; a single component is used as is; otherwise the human part plus 8 hex of the
// path's MD5.
function makeUniqueId(path: readonly string[]): string {
  const components = path.filter((c) => c !== "Default");
  const alphanumeric = (s: string) => s.replace(/[^A-Za-z0-9]/g, "");
  if (components.length === 1) {
    const candidate = alphanumeric(components[0] as string);
    if (candidate.length <= 255) return candidate;
  }
  const hash = createHash("md5").update(components.join("/")).digest("hex").slice(0, 8).toUpperCase();
  const human: string[] = [];
  for (const c of components) if (human.length === 0 || !human[human.length - 1]?.endsWith(c)) human.push(c);
  return (
    human
      .filter((c) => c !== "Resource")
      .map(alphanumeric)
      .join("")
      .slice(0, 240) + hash
  );
}
