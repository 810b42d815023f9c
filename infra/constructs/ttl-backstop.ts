import { Duration } from "aws-cdk-lib";
import { Rule, Schedule } from "aws-cdk-lib/aws-events";
import { LambdaFunction } from "aws-cdk-lib/aws-events-targets";
import { FilterCriteria, StartingPosition } from "aws-cdk-lib/aws-lambda";
import { DynamoEventSource, SqsDlq } from "aws-cdk-lib/aws-lambda-event-sources";
import type { RetentionDays } from "aws-cdk-lib/aws-logs";
import { Queue, QueueEncryption } from "aws-cdk-lib/aws-sqs";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import { TTL_STREAM_FILTER_PATTERN } from "../../lib/app/ttl-backstop.js";
import { JitvFunction } from "./jitv-function.js";
import { flattenedUniqueId, keepIdInLogicalIds } from "./logical-ids.js";
import type { SecretRotation } from "./secret-rotation.js";
import type { TargetRoles } from "./target-roles.js";
import type { TasksTable } from "./tasks-table.js";

export interface TtlBackstopProps {
  /** Absolute path of the stream handler (`functions/ttl-stream.ts`). */
  readonly entry: string;
  /** Absolute path of the scheduled sweeper (`functions/backstop-sweep.ts`). */
  readonly sweepEntry: string;
  readonly table: TasksTable;
  readonly targetRoles: TargetRoles;
  readonly rotation: SecretRotation;
  readonly logRetention: RetentionDays;
}

/**
 * The TTL backstop: when DynamoDB's TTL deletes a lease, the table stream (filtered to exactly
 * those deletions, `TTL_STREAM_FILTER_PATTERN`) invokes a function that revokes, rotates, closes
 * and prunes as the lifecycle would have. Partial batch failures, bisect on error and 10 retries;
 * then the batch's stream coordinates go to an encrypted, TLS-only dead-letter queue kept 14 days
 * (docs/deploy.md, "When the TTL DLQ has messages").
 *
 * Behind it, a sweeper every 5 minutes finishes every task the state machine and the stream both
 * missed (past its deadline, or ended and never closed: `SWEEP_DEFAULTS`), such as the tasks of
 * a batch in the DLQ, so none stays usable waiting for an operator.
 */
export class TtlBackstop extends Construct {
  readonly function: JitvFunction;
  readonly sweepFunction: JitvFunction;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: TtlBackstopProps) {
    super(scope, id);
    this.deadLetterQueue = new Queue(this, "TtlStreamDlq", {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    NagSuppressions.addResourceSuppressions(this.deadLetterQueue, [
      {
        id: "AwsSolutions-SQS3",
        reason:
          "This queue is the dead-letter destination of the TTL-stream event source mapping; it holds only " +
          "failed-batch metadata and has an alarm on its depth.",
      },
    ]);
    this.function = new JitvFunction(this, "TtlStreamFunction", {
      entry: props.entry,
      description: "TTL backstop: revokes, rotates, closes and prunes when a lease expires",
      logRetention: props.logRetention,
      // A batch of up to 10 leases, each possibly several IAM calls with backoff.
      timeout: Duration.minutes(5),
      environment: { ...props.table.environment, ...props.targetRoles.revokerEnvironment },
    });
    props.table.grantItems(this.function, ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"]);
    props.targetRoles.grantRevoke(this.function);
    props.rotation.grantRotateTagged(this.function);
    this.function.function.addEventSource(
      new DynamoEventSource(props.table.table, {
        startingPosition: StartingPosition.TRIM_HORIZON,
        batchSize: 10,
        filters: [FilterCriteria.filter(TTL_STREAM_FILTER_PATTERN)],
        reportBatchItemFailures: true,
        bisectBatchOnError: true,
        retryAttempts: 10,
        onFailure: new SqsDlq(this.deadLetterQueue),
      }),
    );
    // The mapping's id embeds the table's unique id, which moved into TasksTable: keep the deployed
    // mapping (a new one would start over from the stream's trim horizon).
    const mapping = this.function.function.node.children.find((c) =>
      c.node.id.startsWith("DynamoDBEventSource:"),
    );
    if (mapping === undefined) throw new Error("TTL backstop: no stream mapping");
    keepIdInLogicalIds(mapping, () => `DynamoDBEventSource:${flattenedUniqueId(props.table.table)}`);

    this.sweepFunction = new JitvFunction(this, "BackstopSweepFunction", {
      entry: props.sweepEntry,
      description: "Backstop sweep: finishes tasks past their deadline or ended and never closed",
      logRetention: props.logRetention,
      // Shorter than the schedule's period, so sweeps do not overlap (one would be harmless: idempotent).
      timeout: Duration.minutes(4),
      environment: { ...props.table.environment, ...props.targetRoles.revokerEnvironment },
    });
    props.table.grantItems(this.sweepFunction, ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"], {
      indexes: true,
    });
    props.targetRoles.grantRevoke(this.sweepFunction);
    props.rotation.grantRotateTagged(this.sweepFunction);
    new Rule(this, "BackstopSweepSchedule", {
      description: "Runs the jitv backstop sweep",
      schedule: Schedule.rate(Duration.minutes(5)),
      targets: [new LambdaFunction(this.sweepFunction.function, { retryAttempts: 0 })],
    });

    NagSuppressions.addResourceSuppressions(
      this.function.role,
      [
        {
          id: "AwsSolutions-IAM5",
          reason:
            "Added by the DynamoDB event source: Lambda's stream poller needs dynamodb:ListStreams, which has no " +
            "resource-level permissions; the stream reads themselves are on this table's stream ARN only.",
          appliesTo: ["Resource::*"],
        },
      ],
      true,
    );
  }
}
