import { fileURLToPath } from "node:url";
import { Duration, Stack } from "aws-cdk-lib";
import type { ITable } from "aws-cdk-lib/aws-dynamodb";
import { CfnEventBusPolicy, EventBus, type EventPattern, type IEventBus, Rule } from "aws-cdk-lib/aws-events";
import { LambdaFunction } from "aws-cdk-lib/aws-events-targets";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { IKey } from "aws-cdk-lib/aws-kms";
import type { RetentionDays } from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { ENV } from "../../lib/config.js";
import {
  CLOUDTRAIL_DETAIL_TYPE,
  driftEventPattern,
  type EventPattern as JitvEventPattern,
} from "../../lib/drift/event-pattern.js";
import { DEPLOY_DEFAULTS } from "../config.js";
import { JitvFunction } from "./jitv-function.js";

export interface DriftDetectorProps {
  /** The jitv table: tasks, templates and the detector's counters. */
  readonly table: ITable;
  /** The table's encryption key. */
  readonly tableKey: IKey;
  /** The task lifecycle state machine: a drift revocation signals the task's execution. */
  readonly stateMachineArn: string;
  /**
   * Every account whose jitv roles' sessions are watched: the vending account and each target
   * account (each target account deploys a {@link DriftForwarder} towards this bus).
   */
  readonly accounts: readonly string[];
  /** IAM path of the roles agents assume. @default "/jitv/" */
  readonly rolePath?: string;
  /** The bus CloudTrail events arrive on (the account's own, and forwarded ones). @default the default bus */
  readonly eventBus?: IEventBus;
  /** The bus drift notifications (`jitv` / `Task drift detected`) go to. @default the default bus */
  readonly notificationBusName?: string;
  readonly logRetention: RetentionDays;
}

/**
 * Drift detection in the vending account (CONTRACT.md section 9): the `drift` Lambda
 * (`functions/drift.ts`), an EventBridge rule on the vending account's bus that feeds it CloudTrail
 * records of jitv roles' sessions (its own and those the target accounts forward), and the bus
 * policy that lets each other account forward them.
 *
 * The function may read and write the table (tasks, templates, drift counters), answer the
 * lifecycle's task tokens (a drift revocation signals the task's execution, which then revokes on
 * the role as after an admin revoke) and put drift events on the notification bus. It writes no
 * IAM policy itself.
 *
 * @example
 * new DriftDetector(this, "Drift", {
 *   table, tableKey, stateMachineArn: stateMachine.stateMachineArn,
 *   accounts: [this.account, ...targetAccounts], logRetention,
 * });
 */
export class DriftDetector extends Construct {
  readonly function: JitvFunction;
  readonly rule: Rule;

  constructor(scope: Construct, id: string, props: DriftDetectorProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const rolePath = props.rolePath ?? DEPLOY_DEFAULTS.rolePath;
    const bus = props.eventBus ?? EventBus.fromEventBusName(this, "DefaultBus", "default");
    const notificationBus = stack.formatArn({
      service: "events",
      resource: "event-bus",
      resourceName: props.notificationBusName ?? "default",
    });

    this.function = new JitvFunction(this, "Drift", {
      entry: fileURLToPath(new URL("../../functions/drift.ts", import.meta.url)),
      description: "jitv drift: revokes a task whose session acts outside its purpose (CloudTrail)",
      logRetention: props.logRetention,
      timeout: Duration.seconds(30),
      environment: {
        [ENV.tableName]: props.table.tableName,
        ...(props.notificationBusName === undefined ? {} : { [ENV.eventBusName]: props.notificationBusName }),
      },
    });
    const role = this.function.role;
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "TableItems",
        // Read tasks and templates; seen markers and AccessDenied items (put, delete on failure,
        // query a window); the revoke transition (an update, or a transaction freeing the slot).
        actions: ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"].map((a) => `dynamodb:${a}`),
        resources: [props.table.tableArn],
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "TableKey",
        actions: ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
        resources: [props.tableKey.keyArn],
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "AnswerLifecycleTaskTokens",
        actions: ["states:SendTaskSuccess"],
        resources: [props.stateMachineArn],
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "NotifyDrift",
        actions: ["events:PutEvents"],
        resources: [notificationBus],
      }),
    );

    this.rule = new Rule(this, "CloudTrailOfJitvSessions", {
      eventBus: bus,
      description: "jitv drift: CloudTrail records of jitv roles' sessions, to the drift function",
      eventPattern: cdkEventPattern(
        driftEventPattern(
          props.accounts.map((account) => `arn:${stack.partition}:iam::${account}:role${rolePath}`),
        ),
      ),
      // Retried for two hours; the detector is idempotent per CloudTrail eventID.
      targets: [
        new LambdaFunction(this.function.function, { retryAttempts: 8, maxEventAge: Duration.hours(2) }),
      ],
    });

    // Forwarding accounts may put CloudTrail events on the bus, nothing else.
    for (const account of new Set(props.accounts)) {
      if (account === stack.account) continue;
      new CfnEventBusPolicy(this, `Forwarder${account}`, {
        eventBusName: bus.eventBusName,
        statementId: `jitv-drift-${account}`,
        statement: {
          Effect: "Allow",
          Principal: { AWS: `arn:${stack.partition}:iam::${account}:root` },
          Action: "events:PutEvents",
          Resource: bus.eventBusArn,
          Condition: { StringEquals: { "events:detail-type": CLOUDTRAIL_DETAIL_TYPE } },
        },
      });
    }
  }
}

/**
 * A jitv event pattern in CDK's shape: CDK names `detail-type` `detailType` and renders every other
 * field exactly as given, so the synthesized pattern is the one `matchesEventPattern` was tested with.
 */
export function cdkEventPattern(pattern: JitvEventPattern): EventPattern {
  const { "detail-type": detailType, ...fields } = pattern;
  return {
    ...fields,
    ...(detailType === undefined ? {} : { detailType: detailType as string[] }),
  } as EventPattern;
}
