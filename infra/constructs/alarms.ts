import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import type { Stage } from "aws-cdk-lib/aws-apigateway";
import {
  Alarm,
  ComparisonOperator,
  type IMetric,
  MathExpression,
  Metric,
  TreatMissingData,
} from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import { PolicyStatement, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Key } from "aws-cdk-lib/aws-kms";
import { Topic } from "aws-cdk-lib/aws-sns";
import { EmailSubscription } from "aws-cdk-lib/aws-sns-subscriptions";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import type { IStateMachine } from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import { METRICS_NAMESPACE, METRICS_SERVICE, type MetricName } from "../../lib/audit/metrics.js";
import type { JitvFunction } from "./jitv-function.js";

/** CloudWatch metric math takes at most 10 metrics: one throttle alarm per 10 functions. */
export const METRICS_PER_EXPRESSION = 10;

export interface JitvAlarmsProps {
  /** Deployment stage, shown in the topic's display name. */
  readonly stage: string;
  readonly apiStage: Stage;
  readonly stateMachine: IStateMachine;
  readonly ttlDeadLetterQueue: IQueue;
  readonly ttlStreamFunction: JitvFunction;
  readonly rotationFunction: JitvFunction;
  /** The scheduled backstop sweep: it fails when a task it must finish could not be. */
  readonly sweepFunction: JitvFunction;
  /** Every jitv function, for the throttle alarms. */
  readonly functions: readonly JitvFunction[];
  /** Subscribed to the topic. @default - no subscription */
  readonly alarmEmail?: string;
}

/**
 * jitv's alarms and the KMS-encrypted, TLS-only SNS topic they notify: API 5XX and p99 latency,
 * revocation failures and fallbacks, backstop expiries, failed lifecycle executions, TTL DLQ
 * depth and stream lag, STS throttling, function throttles (one alarm per 10 functions), rotation
 * errors. Missing data is not breaching: each watched metric is zero or absent when all is well.
 */
export class JitvAlarms extends Construct {
  readonly topic: Topic;
  readonly alarms: readonly Alarm[];

  constructor(scope: Construct, id: string, props: JitvAlarmsProps) {
    super(scope, id);
    const key = new Key(this, "AlarmTopicKey", {
      description: `${Stack.of(this).stackName}: encrypts the alarm topic`,
      enableKeyRotation: true,
      // Only in-flight notifications are encrypted with it.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    // CloudWatch publishes alarm notifications to the encrypted topic.
    key.addToResourcePolicy(
      new PolicyStatement({
        sid: "CloudWatchAlarmsPublish",
        principals: [new ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey"],
        resources: ["*"],
      }),
    );
    this.topic = new Topic(this, "AlarmTopic", {
      displayName: `jitv ${props.stage} alarms`,
      masterKey: key,
      enforceSSL: true,
    });
    if (props.alarmEmail !== undefined) this.topic.addSubscription(new EmailSubscription(props.alarmEmail));

    const fiveMinutes = Duration.minutes(5);
    // Exactly the namespace and dimension EmfMetrics writes (lib/audit/metrics.ts), or no alarm could fire.
    const jitvMetric = (name: MetricName) =>
      new Metric({
        namespace: METRICS_NAMESPACE,
        metricName: name,
        dimensionsMap: { service: METRICS_SERVICE },
        statistic: "Sum",
        period: fiveMinutes,
      });
    const groups = Array.from(
      { length: Math.ceil(props.functions.length / METRICS_PER_EXPRESSION) },
      (_, g) => props.functions.slice(g * METRICS_PER_EXPRESSION, (g + 1) * METRICS_PER_EXPRESSION),
    );
    const throttleAlarms = groups.map((group, g) => ({
      id: g === 0 ? "FunctionThrottles" : `FunctionThrottles${g + 1}`,
      description: `A jitv function was throttled (reserved or account concurrency exhausted); functions ${g * METRICS_PER_EXPRESSION + 1}-${g * METRICS_PER_EXPRESSION + group.length}`,
      metric: new MathExpression({
        label: "Throttles of jitv functions",
        expression: group.map((_, i) => `t${i}`).join(" + "),
        usingMetrics: Object.fromEntries(
          group.map((fn, i) => [
            `t${i}`,
            fn.function.metricThrottles({ statistic: "Sum", period: fiveMinutes }),
          ]),
        ),
        period: fiveMinutes,
      }),
      threshold: 1,
    }));
    const specs: {
      id: string;
      description: string;
      metric: IMetric;
      threshold: number;
      evaluationPeriods?: number;
    }[] = [
      {
        id: "ApiServerErrors",
        description: "The API answered 5XX (function errors, timeouts or upstream failures)",
        metric: props.apiStage.metricServerError({ statistic: "Sum", period: fiveMinutes }),
        threshold: 5,
      },
      {
        id: "ApiLatency",
        description: "p99 API latency above 5 s for 15 minutes",
        metric: props.apiStage.metricLatency({ statistic: "p99", period: fiveMinutes }),
        threshold: 5000,
        evaluationPeriods: 3,
      },
      {
        id: "RevocationFailed",
        description:
          "A task's revocation, rotation or closing failed after every retry (the TTL backstop remains)",
        metric: jitvMetric("RevocationFailed"),
        threshold: 1,
      },
      {
        id: "RevocationFallback",
        description:
          "A role's revocation list outgrew its inline and overflow policies (or IAM refused its size): " +
          "jitv denied every older session of the role with a dated cutoff, live tasks included",
        metric: jitvMetric("RevocationFallback"),
        threshold: 1,
      },
      {
        id: "LifecycleExecutionsFailed",
        description: "Task lifecycle executions failed",
        metric: props.stateMachine.metricFailed({ statistic: "Sum", period: fiveMinutes }),
        threshold: 1,
      },
      {
        id: "TtlStreamDlqNotEmpty",
        description: "TTL-stream batches failed after every retry; their leases were not handled",
        metric: props.ttlDeadLetterQueue.metricApproximateNumberOfMessagesVisible({
          statistic: "Maximum",
          period: fiveMinutes,
        }),
        threshold: 1,
      },
      {
        id: "TtlStreamIteratorAge",
        description: "The TTL backstop lags the table stream by more than 15 minutes",
        metric: props.ttlStreamFunction.function.metric("IteratorAge", {
          statistic: "Maximum",
          period: fiveMinutes,
        }),
        threshold: Duration.minutes(15).toMilliseconds(),
      },
      {
        id: "StsThrottled",
        description: "STS throttled AssumeRole calls of the vend function",
        metric: jitvMetric("StsThrottled"),
        threshold: 5,
      },
      ...throttleAlarms,
      {
        id: "TaskExpiredByBackstop",
        description:
          "The TTL backstop ended a task the state machine did not (an execution failed, was deleted or lagged)",
        metric: jitvMetric("TaskExpiredByBackstop"),
        threshold: 1,
      },
      {
        id: "BackstopSweepFailed",
        description:
          "The backstop sweep could not finish a task past its deadline or never closed (its log names the tasks)",
        metric: props.sweepFunction.function.metricErrors({ statistic: "Sum", period: fiveMinutes }),
        threshold: 1,
      },
      {
        id: "SecretRotationErrors",
        description: "The rotation function failed a Secrets Manager rotation step",
        metric: props.rotationFunction.function.metricErrors({ statistic: "Sum", period: fiveMinutes }),
        threshold: 1,
      },
    ];
    const action = new SnsAction(this.topic);
    this.alarms = specs.map((spec) => {
      const alarm = new Alarm(this, `${spec.id}Alarm`, {
        alarmDescription: spec.description,
        metric: spec.metric,
        threshold: spec.threshold,
        evaluationPeriods: spec.evaluationPeriods ?? 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
      alarm.addAlarmAction(action);
      return alarm;
    });
  }
}
