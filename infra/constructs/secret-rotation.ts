import { ArnFormat, Aws, Duration, Stack } from "aws-cdk-lib";
import { PolicyStatement, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import type { RetentionDays } from "aws-cdk-lib/aws-logs";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import { JitvFunction } from "./jitv-function.js";
import { ACCOUNT, ARN_PREFIX, REGION } from "./target-roles.js";

/** Tag a secret must carry for jitv to rotate it (and for the rotation function to touch it). */
export const ROTATE_ON_END_TAG = { key: "jitv:rotate-on-end", value: "true" } as const;

export interface SecretRotationProps {
  /** Absolute path of the rotation handler (`functions/rotate-secret.ts`). */
  readonly entry: string;
  readonly logRetention: RetentionDays;
  /**
   * Teams' own rotation functions of secrets that templates rotate on task end: the functions
   * that call `RotateSecret` may invoke them too.
   * @default - jitv's rotation function only
   */
  readonly rotationFunctionArns?: readonly string[];
}

/**
 * Secrets Manager rotation of the secrets tagged `jitv:rotate-on-end=true`: jitv's rotation
 * function (random values; Secrets Manager of this account may invoke it), and
 * {@link grantRotateTagged} for the functions that start rotations when a task ends.
 */
export class SecretRotation extends Construct {
  readonly rotationFunction: JitvFunction;
  private readonly taggedSecrets: string;
  private readonly rotationFunctionArns: readonly string[];

  constructor(scope: Construct, id: string, props: SecretRotationProps) {
    super(scope, id);
    this.taggedSecrets = Stack.of(this).formatArn({
      service: "secretsmanager",
      resource: "secret",
      resourceName: "*",
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.rotationFunction = new JitvFunction(this, "RotateSecretFunction", {
      entry: props.entry,
      description: "Secrets Manager rotation function of secrets tagged jitv:rotate-on-end=true",
      logRetention: props.logRetention,
      timeout: Duration.seconds(60),
    });
    const fn = this.rotationFunction;
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "RotateTaggedSecretValues",
        actions: [
          "secretsmanager:DescribeSecret",
          "secretsmanager:GetSecretValue",
          "secretsmanager:PutSecretValue",
          "secretsmanager:UpdateSecretVersionStage",
        ],
        resources: [this.taggedSecrets],
        conditions: rotateOnEndCondition,
      }),
    );
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "GenerateSecretValues",
        actions: ["secretsmanager:GetRandomPassword"],
        resources: ["*"],
      }),
    );
    acknowledgeTaggedSecrets(fn);
    NagSuppressions.addResourceSuppressions(
      fn.role,
      [
        {
          id: "AwsSolutions-IAM5",
          reason:
            "secretsmanager:GetRandomPassword generates a random string and touches no resource; IAM only " +
            "accepts Resource * for it.",
          appliesTo: ["Resource::*"],
        },
      ],
      true,
    );
    fn.function.addPermission("SecretsManagerInvoke", {
      principal: new ServicePrincipal("secretsmanager.amazonaws.com"),
      action: "lambda:InvokeFunction",
      sourceAccount: Aws.ACCOUNT_ID,
    });
    this.rotationFunctionArns = [fn.function.functionArn, ...(props.rotationFunctionArns ?? [])];
  }

  /**
   * `fn` may start the rotation of tagged secrets. `RotateSecret` also checks that its caller may
   * invoke the secret's rotation function: jitv's own and the teams' listed ones.
   */
  grantRotateTagged(fn: JitvFunction): void {
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "RotateTaggedSecrets",
        actions: ["secretsmanager:RotateSecret"],
        resources: [this.taggedSecrets],
        conditions: rotateOnEndCondition,
      }),
    );
    acknowledgeTaggedSecrets(fn);
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "InvokeRotationFunctions",
        actions: ["lambda:InvokeFunction"],
        resources: [...this.rotationFunctionArns],
      }),
    );
  }
}

const rotateOnEndCondition = {
  StringEquals: { [`aws:ResourceTag/${ROTATE_ON_END_TAG.key}`]: ROTATE_ON_END_TAG.value },
};

// Secrets are matched by pattern by design (templates name them after deployment).
function acknowledgeTaggedSecrets(fn: JitvFunction): void {
  NagSuppressions.addResourceSuppressions(
    fn.role,
    [
      {
        id: "AwsSolutions-IAM5",
        reason:
          "Secrets are named by templates written after deployment; the statement only matches secrets " +
          `tagged ${ROTATE_ON_END_TAG.key}=${ROTATE_ON_END_TAG.value} (aws:ResourceTag condition) in this account and region.`,
        appliesTo: [{ regex: `/^Resource::${ARN_PREFIX}:secretsmanager:${REGION}:${ACCOUNT}:secret:\\*$/` }],
      },
    ],
    true,
  );
}
