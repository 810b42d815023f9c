import { existsSync, readFileSync } from "node:fs";
import { ArnFormat, Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import { LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from "aws-cdk-lib/aws-stepfunctions";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import { LIFECYCLE_ASL_PATH, LIFECYCLE_STATES } from "../../lib/tasks/lifecycle.js";
import { JitvFunction } from "./jitv-function.js";
import type { SecretRotation } from "./secret-rotation.js";
import type { TargetRoles } from "./target-roles.js";
import type { TableAction, TasksTable } from "./tasks-table.js";

export type LifecycleState = keyof typeof LIFECYCLE_STATES;

/** What one lifecycle function may do beyond writing its own logs. */
export interface LifecycleFunctionSpec {
  readonly description: string;
  /** Table actions of its step (the adapters' commands; a transaction's items count as their own). */
  readonly table: readonly TableAction[];
  /** Answers the execution's task token itself (`states:SendTaskSuccess`). */
  readonly answersTaskTokens?: boolean;
  /** Writes the revocation policy on target roles. */
  readonly revokes?: boolean;
  /** Starts rotations of tagged secrets. */
  readonly rotatesSecrets?: boolean;
}

/**
 * The function behind each Lambda state of the lifecycle (`LIFECYCLE_STATES`), and exactly what
 * its step calls. A state added to the ASL without an entry here fails the type check and the
 * synth: its permissions are a decision, never a default.
 */
export const LIFECYCLE_FUNCTIONS: Readonly<Record<LifecycleState, LifecycleFunctionSpec>> = {
  WaitForApproval: {
    description: "Lifecycle WaitForApproval: stores the approval token on the task",
    table: ["GetItem", "UpdateItem"],
    answersTaskTokens: true,
  },
  ApprovalRefused: {
    description: "Lifecycle ApprovalRefused: marks the task denied",
    table: ["GetItem", "UpdateItem"],
  },
  WaitForTaskEnd: {
    description: "Lifecycle WaitForTaskEnd: stores the execution's task token on the task",
    table: ["GetItem", "UpdateItem"],
    answersTaskTokens: true,
  },
  Revoke: {
    description: "Lifecycle Revoke: ends the task and denies its sessions on the target role",
    // Task transition and marks; revocation entries, role lock and meta item, prune lease.
    table: ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"],
    revokes: true,
  },
  RotateSecrets: {
    description: "Lifecycle RotateSecrets: rotates the template's rotateOnEnd secrets",
    table: ["GetItem", "UpdateItem"],
    rotatesSecrets: true,
  },
  CloseTask: {
    description: "Lifecycle CloseTask: records that the lifecycle is done with the task",
    table: ["GetItem", "UpdateItem"],
  },
  LifecycleFailed: {
    description: "Lifecycle LifecycleFailed: marks the task revocation_failed and counts RevocationFailed",
    table: ["GetItem", "UpdateItem"],
  },
};

/**
 * The handler file of a lifecycle state: its ASL substitution in kebab case without
 * `FunctionArn` (`RevokeTaskFunctionArn` → `functions/revoke-task.ts`).
 */
export function lifecycleEntryName(substitution: string): string {
  return substitution
    .replace(/FunctionArn$/, "")
    .replace(/([a-z0-9])([A-Z])/g, "$1-$2")
    .toLowerCase();
}

export interface TaskLifecycleProps {
  /** The directory of the handler files (`functions/`), absolute, with a trailing slash. */
  readonly functionsDir: string;
  readonly table: TasksTable;
  readonly targetRoles: TargetRoles;
  readonly rotation: SecretRotation;
  readonly logRetention: RetentionDays;
  /** Reserved concurrency of the functions calling IAM and Secrets Manager; 0 = unreserved. */
  readonly lifecycleConcurrency: number;
}

/**
 * The task lifecycle: a Standard state machine running infra/state-machines/task-lifecycle.asl.json
 * (the file the sandbox runs), with one function per Lambda state holding only its step's
 * permissions, ERROR-level logs without execution data (task tokens travel in state input), and
 * X-Ray tracing. The state machine is named (`<stack>-task-lifecycle`) so that functions answering
 * its task tokens can be granted on its ARN without a reference cycle.
 */
export class TaskLifecycle extends Construct {
  readonly stateMachine: StateMachine;
  readonly functions: Readonly<Record<LifecycleState, JitvFunction>>;
  private readonly stateMachineArnByName: string;

  constructor(scope: Construct, id: string, props: TaskLifecycleProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const stateMachineName = `${stack.stackName}-task-lifecycle`;
    this.stateMachineArnByName = stack.formatArn({
      service: "states",
      resource: "stateMachine",
      resourceName: stateMachineName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });

    const functions = {} as Record<LifecycleState, JitvFunction>;
    for (const state of Object.keys(LIFECYCLE_STATES) as LifecycleState[]) {
      const spec = LIFECYCLE_FUNCTIONS[state] as LifecycleFunctionSpec | undefined;
      const file = `${props.functionsDir}${lifecycleEntryName(LIFECYCLE_STATES[state].substitution)}.ts`;
      if (spec === undefined || !existsSync(file)) {
        throw new Error(
          `lifecycle state ${state}: ${spec === undefined ? "no entry in LIFECYCLE_FUNCTIONS (infra/constructs/task-lifecycle.ts) declares its permissions" : `handler ${file} does not exist`}`,
        );
      }
      const callsIamOrSecrets = spec.revokes === true || spec.rotatesSecrets === true;
      const fn = new JitvFunction(this, `${state}Function`, {
        entry: file,
        description: spec.description,
        logRetention: props.logRetention,
        timeout: callsIamOrSecrets ? Duration.seconds(60) : Duration.seconds(15),
        environment: spec.revokes
          ? { ...props.table.environment, ...props.targetRoles.revokerEnvironment }
          : props.table.environment,
        ...(callsIamOrSecrets && props.lifecycleConcurrency > 0
          ? { reservedConcurrentExecutions: props.lifecycleConcurrency }
          : {}),
      });
      props.table.grantItems(fn, spec.table);
      if (spec.answersTaskTokens) this.grantAnswerTaskTokens(fn);
      if (spec.revokes) props.targetRoles.grantRevoke(fn);
      if (spec.rotatesSecrets) props.rotation.grantRotateTagged(fn);
      functions[state] = fn;
    }
    this.functions = functions;

    const logs = new LogGroup(this, "LifecycleLogs", {
      // Step Functions' vended logs; the prefix keeps CloudWatch Logs' resource policy small.
      logGroupName: `/aws/vendedlogs/states/${stateMachineName}`,
      retention: props.logRetention,
      // Named, so a retained group would block redeploying the stage; it holds only ERROR
      // events without data (the audit trail is in the function logs, which are retained).
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new StateMachine(this, "TaskLifecycle", {
      stateMachineName,
      stateMachineType: StateMachineType.STANDARD,
      comment: "jitv task lifecycle (infra/state-machines/task-lifecycle.asl.json)",
      definitionBody: DefinitionBody.fromString(readFileSync(LIFECYCLE_ASL_PATH, "utf8")),
      definitionSubstitutions: Object.fromEntries(
        (Object.keys(LIFECYCLE_STATES) as LifecycleState[]).map((state) => [
          LIFECYCLE_STATES[state].substitution,
          functions[state].function.functionArn,
        ]),
      ),
      // ERROR only, and never execution data: task tokens and task ids travel in state input.
      logs: { destination: logs, level: LogLevel.ERROR, includeExecutionData: false },
      tracingEnabled: true,
    });
    this.stateMachine.addToRolePolicy(
      new PolicyStatement({
        sid: "InvokeLifecycleFunctions",
        actions: ["lambda:InvokeFunction"],
        resources: Object.values(functions).map((fn) => fn.function.functionArn),
      }),
    );
    NagSuppressions.addResourceSuppressions(
      this.stateMachine,
      [
        {
          id: "AwsSolutions-SF1",
          reason:
            "ERROR-level logs without execution data by design: state input carries task tokens. Every " +
            "transition is kept in the execution history (90 days), and each step writes its audit event.",
        },
        {
          id: "AwsSolutions-IAM5",
          reason:
            "Added by CDK for logging and tracing: CloudWatch Logs log delivery and X-Ray trace APIs do not " +
            "support resource-level permissions.",
          appliesTo: ["Resource::*"],
        },
      ],
      true,
    );
  }

  /** `fn` may start executions of the lifecycle. */
  grantStart(fn: JitvFunction): void {
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "StartLifecycle",
        actions: ["states:StartExecution"],
        resources: [this.stateMachine.stateMachineArn],
      }),
    );
  }

  /** `fn` may answer the lifecycle's task tokens (granted on the ARN by name: no reference cycle). */
  grantAnswerTaskTokens(fn: JitvFunction): void {
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "AnswerLifecycleTaskTokens",
        actions: ["states:SendTaskSuccess"],
        resources: [this.stateMachineArnByName],
      }),
    );
  }
}
