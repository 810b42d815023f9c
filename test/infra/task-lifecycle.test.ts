import { fileURLToPath } from "node:url";
import { Capture, Match, Template } from "aws-cdk-lib/assertions";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { describe, expect, it } from "vitest";
import { SecretRotation } from "../../infra/constructs/secret-rotation.js";
import { TargetRoles } from "../../infra/constructs/target-roles.js";
import { LIFECYCLE_FUNCTIONS, TaskLifecycle } from "../../infra/constructs/task-lifecycle.js";
import { TasksTable } from "../../infra/constructs/tasks-table.js";
import { LIFECYCLE_STATES } from "../../lib/tasks/lifecycle.js";
import {
  allIdentityStatements,
  constructTestStack,
  getAtt,
  logicalId,
  nagFindings,
  type Resources,
} from "./support.js";

const FUNCTIONS_DIR = fileURLToPath(new URL("../../functions/", import.meta.url));

function build(lifecycleConcurrency: number) {
  const stack = constructTestStack();
  const table = new TasksTable(stack, "Tasks");
  const rotation = new SecretRotation(stack, "Rotation", {
    entry: `${FUNCTIONS_DIR}rotate-secret.ts`,
    logRetention: RetentionDays.ONE_MONTH,
  });
  const lifecycle = new TaskLifecycle(stack, "Lifecycle", {
    functionsDir: FUNCTIONS_DIR,
    table,
    targetRoles: new TargetRoles(stack, { rolePath: "/jitv/" }),
    rotation,
    logRetention: RetentionDays.ONE_MONTH,
    lifecycleConcurrency,
  });
  const template = Template.fromStack(stack);
  return { stack, lifecycle, template, resources: template.toJSON().Resources as Resources };
}

describe("TaskLifecycle", () => {
  const { stack, lifecycle, template, resources } = build(10);
  const id = (construct: { node: { defaultChild?: unknown } }) => logicalId(stack, construct);
  const sidsOf = (state: keyof typeof LIFECYCLE_STATES) =>
    allIdentityStatements(resources)
      .filter(({ resource }) =>
        JSON.stringify(resources[resource]?.Properties.Roles).includes(id(lifecycle.functions[state].role)),
      )
      .map(({ statement }) => statement.Sid)
      .filter((sid) => sid !== undefined)
      .sort();

  it("is a traced Standard state machine whose Lambda states run one function each", () => {
    const substitutions = new Capture();
    template.hasResourceProperties("AWS::StepFunctions::StateMachine", {
      StateMachineType: "STANDARD",
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: { Level: "ERROR", IncludeExecutionData: false, Destinations: [Match.anyValue()] },
      DefinitionSubstitutions: substitutions,
    });
    expect(substitutions.asObject()).toEqual(
      Object.fromEntries(
        (Object.keys(LIFECYCLE_STATES) as (keyof typeof LIFECYCLE_STATES)[]).map((state) => [
          LIFECYCLE_STATES[state].substitution,
          getAtt(id(lifecycle.functions[state].function)),
        ]),
      ),
    );
  });

  it("grants each step only what LIFECYCLE_FUNCTIONS declares", () => {
    for (const state of Object.keys(LIFECYCLE_STATES) as (keyof typeof LIFECYCLE_STATES)[]) {
      const spec = LIFECYCLE_FUNCTIONS[state];
      const expected = [
        "TableItems",
        "TableKey",
        "WriteOwnLogs",
        ...(spec.answersTaskTokens ? ["AnswerLifecycleTaskTokens"] : []),
        ...(spec.revokes ? ["RevocationOverflowPolicies", "RevocationPolicyOnTargetRoles"] : []),
        ...(spec.rotatesSecrets ? ["InvokeRotationFunctions", "RotateTaggedSecrets"] : []),
      ].sort();
      expect(sidsOf(state), state).toEqual(expected);
      const reserved =
        resources[id(lifecycle.functions[state].function)]?.Properties.ReservedConcurrentExecutions;
      expect(reserved, state).toBe(spec.revokes || spec.rotatesSecrets ? 10 : undefined);
    }
    expect(nagFindings(stack)).toEqual([]);
  });

  it("reserves no concurrency when lifecycleConcurrency is 0", () => {
    const { resources: unreserved } = build(0);
    for (const r of Object.values(unreserved).filter((r) => r.Type === "AWS::Lambda::Function")) {
      expect(r.Properties.ReservedConcurrentExecutions).toBeUndefined();
    }
  });
});
