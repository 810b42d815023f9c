import { Match, Template } from "aws-cdk-lib/assertions";
import { RestApi } from "aws-cdk-lib/aws-apigateway";
import { RetentionDays } from "aws-cdk-lib/aws-logs";
import { Queue } from "aws-cdk-lib/aws-sqs";
import { DefinitionBody, Pass, StateMachine } from "aws-cdk-lib/aws-stepfunctions";
import { describe, expect, it } from "vitest";
import { JitvAlarms, METRICS_PER_EXPRESSION } from "../../infra/constructs/alarms.js";
import { JitvFunction } from "../../infra/constructs/jitv-function.js";
import { EmfMetrics } from "../../lib/audit/metrics.js";
import { constructTestStack, type Resources } from "./support.js";

function build(functionCount: number) {
  // Bare stand-ins for the API, state machine and queue: cdk-nag judges those in the vending stack.
  const stack = constructTestStack(undefined, { nag: false });
  const functions = Array.from(
    { length: functionCount },
    (_, i) =>
      new JitvFunction(stack, `Fn${i}`, {
        entry: new URL("../../functions/close-task.ts", import.meta.url).pathname,
        description: `function ${i}`,
        logRetention: RetentionDays.ONE_MONTH,
      }),
  );
  const api = new RestApi(stack, "Api");
  api.root.addMethod("GET");
  const alarms = new JitvAlarms(stack, "Alarms", {
    stage: "dev",
    apiStage: api.deploymentStage,
    stateMachine: new StateMachine(stack, "Machine", {
      definitionBody: DefinitionBody.fromChainable(new Pass(stack, "P")),
    }),
    ttlDeadLetterQueue: new Queue(stack, "Dlq"),
    ttlStreamFunction: functions[0] as JitvFunction,
    rotationFunction: functions[0] as JitvFunction,
    sweepFunction: functions[0] as JitvFunction,
    functions,
    alarmEmail: "oncall@example.com",
  });
  const template = Template.fromStack(stack);
  return { alarms, template, resources: template.toJSON().Resources as Resources };
}

const throttleAlarms = (resources: Resources) =>
  Object.values(resources).filter(
    (r) =>
      r.Type === "AWS::CloudWatch::Alarm" &&
      String(r.Properties.AlarmDescription).startsWith("A jitv function was throttled"),
  );

describe("JitvAlarms", () => {
  it("splits the throttle alarms so that no metric math exceeds CloudWatch's 10 metrics, covering every function", () => {
    for (const count of [1, 10, 11, 23]) {
      const { resources } = build(count);
      const perAlarm = throttleAlarms(resources).map(
        (a) => a.Properties.Metrics.filter((m: { MetricStat?: unknown }) => m.MetricStat).length,
      );
      expect(perAlarm.length, `${count} functions`).toBe(Math.ceil(count / METRICS_PER_EXPRESSION));
      for (const n of perAlarm) expect(n).toBeLessThanOrEqual(METRICS_PER_EXPRESSION);
      expect(perAlarm.reduce((a, b) => a + b, 0)).toBe(count);
    }
  });

  it("selects each custom metric exactly as a function's EMF line emits it, and notifies the encrypted topic", () => {
    const { template, resources } = build(2);
    for (const name of [
      "RevocationFailed",
      "RevocationFallback",
      "StsThrottled",
      "TaskExpiredByBackstop",
    ] as const) {
      const lines: string[] = [];
      new EmfMetrics({ write: (line) => lines.push(line) }).count(name);
      const emitted = JSON.parse(lines[0] ?? "{}");
      const [definition] = emitted._aws.CloudWatchMetrics;
      const alarm = Object.values(resources).find(
        (r) => r.Type === "AWS::CloudWatch::Alarm" && r.Properties.MetricName === name,
      );
      expect(alarm?.Properties).toMatchObject({
        Namespace: definition.Namespace,
        Dimensions: (definition.Dimensions[0] as string[]).map((dim) => ({ Name: dim, Value: emitted[dim] })),
        TreatMissingData: "notBreaching",
      });
    }
    template.hasResourceProperties("AWS::SNS::Topic", { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties("AWS::SNS::Subscription", {
      Protocol: "email",
      Endpoint: "oncall@example.com",
    });
  });
});
