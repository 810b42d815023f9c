import { fileURLToPath } from "node:url";
import { type CfnElement, CfnOutput, Fn, Stack, type StackProps, Tags } from "aws-cdk-lib";
import type { Alarm } from "aws-cdk-lib/aws-cloudwatch";
import type { Table } from "aws-cdk-lib/aws-dynamodb";
import type { Key } from "aws-cdk-lib/aws-kms";
import type { RetentionDays } from "aws-cdk-lib/aws-logs";
import type { Topic } from "aws-cdk-lib/aws-sns";
import type { Queue } from "aws-cdk-lib/aws-sqs";
import type { StateMachine } from "aws-cdk-lib/aws-stepfunctions";
import type { Construct } from "constructs";
import { DEPLOY_DEFAULTS } from "../config.js";
import { JitvAlarms } from "../constructs/alarms.js";
import { DriftDetector } from "../constructs/drift-detector.js";
import type { JitvFunction } from "../constructs/jitv-function.js";
import { flattenedLogicalId, flattenLogicalIds } from "../constructs/logical-ids.js";
import { SecretRotation } from "../constructs/secret-rotation.js";
import { TargetRoles } from "../constructs/target-roles.js";
import { type LifecycleState, TaskLifecycle } from "../constructs/task-lifecycle.js";
import { TasksTable } from "../constructs/tasks-table.js";
import { TtlBackstop } from "../constructs/ttl-backstop.js";
import { VendFunction } from "../constructs/vend-function.js";
import { VendingApi } from "../constructs/vending-api.js";

const FUNCTIONS_DIR = fileURLToPath(new URL("../../functions/", import.meta.url));

export interface VendingStackProps extends StackProps {
  /**
   * Absolute path of the trusted-issuers file (validated by the app with `loadIssuerConfigFile`);
   * copied into the API function's bundle.
   */
  readonly issuersFile: string;
  /** Deployment stage, the API's stage name. @default "dev" */
  readonly stage?: string;
  /** IAM path of the roles agents may assume. @default "/jitv/" */
  readonly rolePath?: string;
  /** The only roles jitv may vend and revoke on. @default - every role under `rolePath` */
  readonly allowedRoleArns?: readonly string[];
  /**
   * Rotation functions of secrets that templates rotate on task end besides jitv's own (teams'
   * functions): the functions that call `RotateSecret` may invoke them, as Secrets Manager requires.
   * @default - jitv's rotation function only
   */
  readonly rotationFunctionArns?: readonly string[];
  /**
   * Other accounts jitv may vend into. Each must have deployed `TargetAccountStack` (its revoker
   * role): revocation there writes through that role, roles addressed by ARN.
   * @default - the stack's own account only
   */
  readonly targetAccounts?: readonly string[];
  /** E-mail subscribed to the alarm topic. @default - no subscription */
  readonly alarmEmail?: string;
  /** Stage-wide steady-state request rate (per second). @default 50 */
  readonly apiRateLimit?: number;
  /** Stage-wide burst. @default 100 */
  readonly apiBurstLimit?: number;
  /** `POST /v1/tasks` steady-state rate (per second). @default 10 */
  readonly vendRateLimit?: number;
  /** `POST /v1/tasks` burst. @default twice `vendRateLimit` */
  readonly vendBurstLimit?: number;
  /** Regional WAFv2 web ACL for the API stage. @default - none */
  readonly wafAclArn?: string;
  /** Retention of every log group (days; a CloudWatch Logs retention value). @default 365 */
  readonly logRetentionDays?: number;
  /**
   * Reserved concurrency of the functions that call IAM and Secrets Manager (revoke, rotate),
   * which keeps a burst of ending tasks from exhausting those APIs' rate limits; 0 = unreserved.
   * @default 10
   */
  readonly lifecycleConcurrency?: number;
}

/**
 * The jitv vending stack: the wiring of its constructs (infra/constructs/). Every function has
 * its own role with only the calls its code makes.
 *
 * Logical ids: the constructs below other than the API (`Http`) are flattened
 * (infra/constructs/logical-ids.ts), so every resource keeps the logical id it had when this
 * stack was one constructor, and an existing deployment updates in place.
 */
export class VendingStack extends Stack {
  readonly table: Table;
  readonly tableKey: Key;
  readonly api: VendingApi;
  readonly apiFunction: JitvFunction;
  readonly lifecycleFunctions: Readonly<Record<LifecycleState, JitvFunction>>;
  readonly ttlStreamFunction: JitvFunction;
  readonly backstopSweepFunction: JitvFunction;
  readonly driftFunction: JitvFunction;
  readonly rotationFunction: JitvFunction;
  readonly stateMachine: StateMachine;
  readonly deadLetterQueue: Queue;
  readonly alarmTopic: Topic;
  readonly alarms: readonly Alarm[];

  constructor(scope: Construct, id: string, props: VendingStackProps) {
    super(scope, id, props);
    const stage = props.stage ?? DEPLOY_DEFAULTS.stage;
    const logRetention = (props.logRetentionDays ?? DEPLOY_DEFAULTS.logRetentionDays) as RetentionDays;
    const vendRateLimit = props.vendRateLimit ?? DEPLOY_DEFAULTS.vendRateLimit;
    const entry = (name: string) => `${FUNCTIONS_DIR}${name}.ts`;
    const flat = <T extends Construct>(construct: T): T => {
      flattenLogicalIds(construct);
      return construct;
    };
    Tags.of(this).add("jitv:stage", stage);

    const tasks = flat(new TasksTable(this, "TasksTable"));
    const targetRoles = new TargetRoles(this, {
      rolePath: props.rolePath ?? DEPLOY_DEFAULTS.rolePath,
      ...(props.allowedRoleArns === undefined ? {} : { allowedRoleArns: props.allowedRoleArns }),
      ...(props.targetAccounts === undefined ? {} : { targetAccounts: props.targetAccounts }),
    });
    const rotation = flat(
      new SecretRotation(this, "SecretRotation", {
        entry: entry("rotate-secret"),
        logRetention,
        ...(props.rotationFunctionArns === undefined
          ? {}
          : { rotationFunctionArns: props.rotationFunctionArns }),
      }),
    );
    const lifecycle = flat(
      new TaskLifecycle(this, "Lifecycle", {
        functionsDir: FUNCTIONS_DIR,
        table: tasks,
        targetRoles,
        rotation,
        logRetention,
        lifecycleConcurrency: props.lifecycleConcurrency ?? DEPLOY_DEFAULTS.lifecycleConcurrency,
      }),
    );
    const vend = flat(
      new VendFunction(this, "Vend", {
        entry: entry("api"),
        issuersFile: props.issuersFile,
        stage,
        table: tasks,
        lifecycle,
        targetRoles,
        logRetention,
      }),
    );
    this.api = new VendingApi(this, "Http", {
      handler: vend.function.function,
      stageName: stage,
      rateLimit: props.apiRateLimit ?? DEPLOY_DEFAULTS.apiRateLimit,
      burstLimit: props.apiBurstLimit ?? DEPLOY_DEFAULTS.apiBurstLimit,
      vendRateLimit,
      vendBurstLimit: props.vendBurstLimit ?? vendRateLimit * 2,
      logRetention,
      ...(props.wafAclArn === undefined ? {} : { wafAclArn: props.wafAclArn }),
    });
    const backstop = flat(
      new TtlBackstop(this, "TtlBackstop", {
        entry: entry("ttl-stream"),
        sweepEntry: entry("backstop-sweep"),
        table: tasks,
        targetRoles,
        rotation,
        logRetention,
      }),
    );
    const drift = new DriftDetector(this, "Drift", {
      table: tasks.table,
      tableKey: tasks.key,
      stateMachineArn: lifecycle.stateMachine.stateMachineArn,
      accounts: targetRoles.accounts,
      rolePath: props.rolePath ?? DEPLOY_DEFAULTS.rolePath,
      logRetention,
    });
    const alarms = flat(
      new JitvAlarms(this, "Alarms", {
        stage,
        apiStage: this.api.api.deploymentStage,
        stateMachine: lifecycle.stateMachine,
        ttlDeadLetterQueue: backstop.deadLetterQueue,
        ttlStreamFunction: backstop.function,
        rotationFunction: rotation.rotationFunction,
        sweepFunction: backstop.sweepFunction,
        functions: [
          vend.function,
          ...Object.values(lifecycle.functions),
          backstop.function,
          backstop.sweepFunction,
          rotation.rotationFunction,
          drift.function,
        ],
        ...(props.alarmEmail === undefined ? {} : { alarmEmail: props.alarmEmail }),
      }),
    );

    this.table = tasks.table;
    this.tableKey = tasks.key;
    this.apiFunction = vend.function;
    this.lifecycleFunctions = lifecycle.functions;
    this.stateMachine = lifecycle.stateMachine;
    this.ttlStreamFunction = backstop.function;
    this.backstopSweepFunction = backstop.sweepFunction;
    this.driftFunction = drift.function;
    this.deadLetterQueue = backstop.deadLetterQueue;
    this.rotationFunction = rotation.rotationFunction;
    this.alarmTopic = alarms.topic;
    this.alarms = alarms.alarms;

    new CfnOutput(this, "ApiUrl", {
      description: "Base URL of the jitv API (append v1/tasks, healthz)",
      value: this.api.api.url,
    });
    new CfnOutput(this, "TableName", { value: this.table.tableName });
    new CfnOutput(this, "TargetAccounts", {
      description: "Accounts jitv vends into (for jitv templates put --accounts / JITV_TARGET_ACCOUNTS)",
      value: targetRoles.accounts.join(","),
    });
    new CfnOutput(this, "StateMachineArn", { value: this.stateMachine.stateMachineArn });
    new CfnOutput(this, "VendFunctionRoleArn", {
      description: "The only principal JitTargetRole trusts: pass it as vendFunctionRoleArn",
      value: this.apiFunction.role.roleArn,
    });
    new CfnOutput(this, "RotationFunctionArn", {
      description: "Rotation function for secrets tagged jitv:rotate-on-end=true",
      value: this.rotationFunction.function.functionArn,
    });
    new CfnOutput(this, "AlarmTopicArn", { value: this.alarmTopic.topicArn });
    new CfnOutput(this, "AuditLogGroups", {
      description:
        "Log groups holding jitv's audit events (for jitv audit --log-group / JITV_AUDIT_LOG_GROUPS)",
      value: Fn.join(
        ",",
        [
          vend.function,
          ...Object.values(lifecycle.functions),
          backstop.function,
          backstop.sweepFunction,
          drift.function,
        ].map((fn) => fn.logGroup.logGroupName),
      ),
    });
  }

  /** Flattened constructs leave no trace in logical ids (see the class comment). */
  protected override allocateLogicalId(element: CfnElement): string {
    return flattenedLogicalId(element);
  }
}
