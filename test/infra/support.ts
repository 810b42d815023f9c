import { readFileSync } from "node:fs";
import { App, Aspects, type CfnElement, type Environment, Stack } from "aws-cdk-lib";
import { Annotations, Match, type Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
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
  options: { context?: Record<string, unknown>; env?: Environment; outdir?: string; bundle?: boolean } = {},
): { app: App; stack: VendingStack } {
  const app = new App({
    context: {
      ...cdkJsonContext(),
      issuersFile: "examples/issuers.json",
      ...(options.bundle === false ? NO_BUNDLING : {}),
      ...options.context,
    },
    ...(options.outdir === undefined ? {} : { outdir: options.outdir }),
  });
  const stack = buildVendingApp(app, options.env === undefined ? {} : { env: options.env });
  return { app, stack };
}

/** CDK context that skips bundling (assets become placeholders): for tests that read the template only. */
const NO_BUNDLING = { "aws:cdk:bundling-stacks": [] };

/**
 * An empty stack in an app with cdk.json's context, cdk-nag's AWS Solutions checks (unless
 * `nag: false`, for tests that stand in bare resources for the vending stack's) and no
 * bundling: for one construct's tests, in isolation from the vending stack's wiring.
 */
export function constructTestStack(env?: Environment, options: { nag?: boolean } = {}): Stack {
  const app = new App({ context: { ...cdkJsonContext(), ...NO_BUNDLING } });
  if (options.nag !== false) Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return new Stack(app, "ConstructTest", env === undefined ? {} : { env });
}

/** cdk-nag's AWS Solutions errors and warnings on a stack, one line each ([] when clean). */
export function nagFindings(stack: Stack): string[] {
  const annotations = Annotations.fromStack(stack);
  return [
    ...annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*")),
    ...annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*")),
  ].map((f) => `${f.id}: ${String(f.entry.data).slice(0, 100)}`);
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
