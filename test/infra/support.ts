import { readFileSync } from "node:fs";
import { App, type CfnElement, type Environment, type Stack } from "aws-cdk-lib";
import type { Template } from "aws-cdk-lib/assertions";
import { buildVendingApp } from "../../infra/build-app.js";
import type { VendingStack } from "../../infra/stacks/vending-stack.js";

/** The feature flags and context of cdk.json, so tests synthesize what `cdk synth` does. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
    context?: Record<string, unknown>;
  };
  return { ...cdkJson.context };
}

/**
 * Builds the app exactly as `infra/app.ts` does (context validation, the vending stack,
 * cdk-nag's AWS Solutions checks), from cdk.json plus `context`.
 */
export function buildTestApp(
  options: { context?: Record<string, unknown>; env?: Environment; outdir?: string } = {},
): { app: App; stack: VendingStack } {
  const app = new App({
    context: { ...cdkJsonContext(), issuersFile: "examples/issuers.json", ...options.context },
    ...(options.outdir === undefined ? {} : { outdir: options.outdir }),
  });
  const stack = buildVendingApp(app, options.env === undefined ? {} : { env: options.env });
  return { app, stack };
}

/** The logical id of a construct's CloudFormation resource (its default child). */
export function logicalId(stack: Stack, construct: { node: { defaultChild?: unknown } }): string {
  return stack.getLogicalId(construct.node.defaultChild as CfnElement);
}

/** `{"Fn::GetAtt": [id, attribute]}`. */
export function getAtt(id: string, attribute = "Arn") {
  return { "Fn::GetAtt": [id, attribute] };
}

export interface Statement {
  readonly Sid?: string;
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: unknown;
}

/** Every statement of every identity policy (AWS::IAM::Policy and inline role policies) in a template. */
/** One resource of a synthesized template, as untyped as CloudFormation JSON (`Template.toJSON`). */
export type ResourceJson = ReturnType<Template["toJSON"]>;
/** The `Resources` section of a synthesized template. */
export type Resources = Record<string, ResourceJson>;

export function allIdentityStatements(resources: Resources): {
  resource: string;
  statement: Statement;
}[] {
  const out: { resource: string; statement: Statement }[] = [];
  for (const [id, resource] of Object.entries(resources)) {
    if (resource.Type === "AWS::IAM::Policy") {
      for (const statement of resource.Properties.PolicyDocument.Statement)
        out.push({ resource: id, statement });
    }
    if (resource.Type === "AWS::IAM::Role") {
      for (const policy of resource.Properties.Policies ?? []) {
        for (const statement of policy.PolicyDocument.Statement) out.push({ resource: id, statement });
      }
    }
  }
  return out;
}

/** A statement's actions as an array. */
export function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}
