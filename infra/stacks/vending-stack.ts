import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  ArnFormat,
  Aws,
  CfnOutput,
  Duration,
  RemovalPolicy,
  Stack,
  type StackProps,
  Tags,
} from "aws-cdk-lib";
import {
  Alarm,
  ComparisonOperator,
  type IMetric,
  MathExpression,
  Metric,
  TreatMissingData,
} from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import { AttributeType, BillingMode, StreamViewType, Table, TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import { PolicyStatement, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Key } from "aws-cdk-lib/aws-kms";
import { FilterCriteria, StartingPosition } from "aws-cdk-lib/aws-lambda";
import { DynamoEventSource, SqsDlq } from "aws-cdk-lib/aws-lambda-event-sources";
import { LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import { Topic } from "aws-cdk-lib/aws-sns";
import { EmailSubscription } from "aws-cdk-lib/aws-sns-subscriptions";
import { Queue, QueueEncryption } from "aws-cdk-lib/aws-sqs";
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from "aws-cdk-lib/aws-stepfunctions";
import { NagSuppressions } from "cdk-nag";
import type { Construct } from "constructs";
import { TTL_STREAM_FILTER_PATTERN } from "../../lib/app/ttl-backstop.js";
import { METRICS_NAMESPACE, METRICS_SERVICE, type MetricName } from "../../lib/audit/metrics.js";
import { ENV } from "../../lib/config.js";
import { REVOKER_CALLER_TAG, REVOKER_ROLE_NAME, REVOKER_ROLE_PATH } from "../../lib/domain/accounts.js";
import {
  OVERFLOW_POLICY_ACTIONS,
  REVOCATION_ROLE_ACTIONS,
} from "../../lib/revocation/iam-role-policy-writer.js";
import { OVERFLOW_POLICY_PATH } from "../../lib/revocation/policy.js";
import { TTL_ATTRIBUTE, tableDefinition } from "../../lib/store/table.js";
import { LIFECYCLE_ASL_PATH, LIFECYCLE_STATES } from "../../lib/tasks/lifecycle.js";
import { DEPLOY_DEFAULTS } from "../config.js";
import { JitvFunction } from "../constructs/jitv-function.js";
import { VendingApi } from "../constructs/vending-api.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const entry = (name: string) => `${ROOT}functions/${name}.ts`;

/** Where the API function reads the issuers file that synth copied into its bundle. */
export const BUNDLED_ISSUERS_FILE = "/var/task/issuers.json";

/** Tag a secret must carry for jitv to rotate it (and for the rotation function to touch it). */
export const ROTATE_ON_END_TAG = { key: "jitv:rotate-on-end", value: "true" } as const;

type LifecycleState = keyof typeof LIFECYCLE_STATES;
type TableAction = "GetItem" | "PutItem" | "UpdateItem" | "DeleteItem" | "Query";

/** What one lifecycle function may do beyond writing its own logs. */
interface LifecycleFunctionSpec {
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

// How cdk-nag renders an ARN prefix and account: tokens when the environment is unknown,
// literals once CDK knows the partition (and, at deploy time, the account).
const ARN_PREFIX = "arn:(?:<AWS::Partition>|aws[a-z-]*)";
const ACCOUNT = "(?:<AWS::AccountId>|\\d{12})";
const REGION = "(?:<AWS::Region>|[a-z0-9-]+)";
const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

const ATTRIBUTE_TYPES: Readonly<Record<string, AttributeType>> = {
  S: AttributeType.STRING,
  N: AttributeType.NUMBER,
  B: AttributeType.BINARY,
};

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
 * The jitv vending stack: the table, the HTTP API, the lifecycle state machine and its
 * functions, the TTL-stream backstop, the secret rotation function, and alarms. Every function
 * has its own role with only the calls its code makes.
 */
export class VendingStack extends Stack {
  readonly table: Table;
  readonly tableKey: Key;
  readonly api: VendingApi;
  readonly apiFunction: JitvFunction;
  readonly lifecycleFunctions: Readonly<Record<LifecycleState, JitvFunction>>;
  readonly ttlStreamFunction: JitvFunction;
  readonly rotationFunction: JitvFunction;
  readonly stateMachine: StateMachine;
  readonly deadLetterQueue: Queue;
  readonly alarmTopic: Topic;
  readonly alarms: readonly Alarm[];

  constructor(scope: Construct, id: string, props: VendingStackProps) {
    super(scope, id, props);
    const stage = props.stage ?? DEPLOY_DEFAULTS.stage;
    const rolePath = props.rolePath ?? DEPLOY_DEFAULTS.rolePath;
    const logRetention = (props.logRetentionDays ?? DEPLOY_DEFAULTS.logRetentionDays) as RetentionDays;
    const lifecycleConcurrency = props.lifecycleConcurrency ?? DEPLOY_DEFAULTS.lifecycleConcurrency;
    const vendRateLimit = props.vendRateLimit ?? DEPLOY_DEFAULTS.vendRateLimit;
    Tags.of(this).add("jitv:stage", stage);

    // Accounts jitv vends into: its own and the registered target accounts.
    const otherAccounts = (props.targetAccounts ?? []).filter((account) => account !== this.account);
    // Roles agents may assume: the listed ARNs, or every role under the jitv path, in each account. Never "*".
    const targetRoleArns = props.allowedRoleArns?.length
      ? [...props.allowedRoleArns]
      : [undefined, ...otherAccounts].map((account) =>
          this.formatArn({
            service: "iam",
            region: "",
            ...(account === undefined ? {} : { account }),
            resource: "role",
            resourceName: `${rolePath.slice(1)}*`,
          }),
        );
    // In another account, revocation writes through that account's revoker role.
    const assumeRevokers =
      otherAccounts.length === 0
        ? undefined
        : new PolicyStatement({
            sid: "AssumeTargetAccountRevokers",
            actions: ["sts:AssumeRole"],
            resources: otherAccounts.map((account) =>
              this.formatArn({
                service: "iam",
                region: "",
                account,
                resource: "role",
                resourceName: `${REVOKER_ROLE_PATH.slice(1)}${REVOKER_ROLE_NAME}`,
              }),
            ),
          });
    const accountsEnv = {
      [ENV.accountId]: this.account,
      [ENV.targetAccounts]: [this.account, ...otherAccounts].join(","),
    };
    /** A function that revokes: its role may assume the revoker roles, which trust only such callers. */
    const revokesAcrossAccounts = (fn: JitvFunction) => {
      if (!assumeRevokers) return;
      fn.role.addToPrincipalPolicy(assumeRevokers);
      Tags.of(fn.role).add(REVOKER_CALLER_TAG, "true");
    };
    const taggedSecrets = this.formatArn({
      service: "secretsmanager",
      resource: "secret",
      resourceName: "*",
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const rotateOnEndCondition = {
      StringEquals: { [`aws:ResourceTag/${ROTATE_ON_END_TAG.key}`]: ROTATE_ON_END_TAG.value },
    };
    // Named so the functions that answer task tokens can be granted on it without a reference
    // cycle (the state machine refers to those functions).
    const stateMachineName = `${this.stackName}-task-lifecycle`;
    const stateMachineArn = this.formatArn({
      service: "states",
      resource: "stateMachine",
      resourceName: stateMachineName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });

    // --- Table ---------------------------------------------------------------------------
    this.tableKey = new Key(this, "TableKey", {
      description: `${this.stackName}: encrypts the jitv table and its stream`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Keys and indexes as lib/store/table.ts defines them for DynamoDB Local, so both agree.
    const definition = tableDefinition("jitv");
    const attribute = (name: string | undefined) => {
      const scalar = definition.AttributeDefinitions?.find((a) => a.AttributeName === name)?.AttributeType;
      const type = scalar === undefined ? undefined : ATTRIBUTE_TYPES[scalar];
      if (name === undefined || type === undefined) throw new Error(`table definition: no type for ${name}`);
      return { name, type };
    };
    const keys = (schema: readonly { AttributeName?: string; KeyType?: string }[] | undefined) => ({
      partitionKey: attribute(schema?.find((k) => k.KeyType === "HASH")?.AttributeName),
      ...(schema?.some((k) => k.KeyType === "RANGE")
        ? { sortKey: attribute(schema.find((k) => k.KeyType === "RANGE")?.AttributeName) }
        : {}),
    });
    this.table = new Table(this, "Table", {
      ...keys(definition.KeySchema),
      billingMode: BillingMode.PAY_PER_REQUEST,
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.tableKey,
      timeToLiveAttribute: TTL_ATTRIBUTE,
      stream: StreamViewType.NEW_AND_OLD_IMAGES,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const index of definition.GlobalSecondaryIndexes ?? []) {
      if (index.IndexName === undefined || index.Projection?.ProjectionType !== "ALL") {
        throw new Error(`table definition: index ${index.IndexName} must be named and project ALL`);
      }
      this.table.addGlobalSecondaryIndex({ indexName: index.IndexName, ...keys(index.KeySchema) });
    }
    const indexArns = (definition.GlobalSecondaryIndexes ?? []).map(
      (index) => `${this.table.tableArn}/index/${index.IndexName}`,
    );
    const useTable = (
      fn: JitvFunction,
      actions: readonly TableAction[],
      options: { indexes?: boolean } = {},
    ) => {
      fn.role.addToPrincipalPolicy(
        new PolicyStatement({
          sid: "TableItems",
          actions: actions.map((action) => `dynamodb:${action}`),
          resources: [this.table.tableArn],
        }),
      );
      if (options.indexes) {
        fn.role.addToPrincipalPolicy(
          new PolicyStatement({ sid: "TableIndexes", actions: ["dynamodb:Query"], resources: indexArns }),
        );
      }
      // DynamoDB uses the table key on the caller's behalf: decrypt to read, encrypt to write.
      fn.role.addToPrincipalPolicy(
        new PolicyStatement({
          sid: "TableKey",
          actions: ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
          resources: [this.tableKey.keyArn],
        }),
      );
    };
    const reviseTargetRoles = new PolicyStatement({
      sid: "RevocationPolicyOnTargetRoles",
      // ListRolePolicies + GetRolePolicy measure what the role's inline quota has free.
      // ListAttachedRolePolicies finds the role's revocation overflow policies.
      actions: [...REVOCATION_ROLE_ACTIONS],
      resources: targetRoleArns,
    });
    // The overflow policies JitTargetRole attaches under /jitv/revocation/: new versions only.
    const reviseOverflowPolicies = new PolicyStatement({
      sid: "RevocationOverflowPolicies",
      actions: [...OVERFLOW_POLICY_ACTIONS],
      resources: [undefined, ...otherAccounts].map((account) =>
        this.formatArn({
          service: "iam",
          region: "",
          ...(account === undefined ? {} : { account }),
          resource: "policy",
          resourceName: `${OVERFLOW_POLICY_PATH.slice(1)}*`,
        }),
      ),
    });
    const rotateTaggedSecrets = new PolicyStatement({
      sid: "RotateTaggedSecrets",
      actions: ["secretsmanager:RotateSecret"],
      resources: [taggedSecrets],
      conditions: rotateOnEndCondition,
    });
    const answerTaskTokens = new PolicyStatement({
      sid: "AnswerLifecycleTaskTokens",
      actions: ["states:SendTaskSuccess"],
      resources: [stateMachineArn],
    });

    // Target roles and tagged secrets are matched by pattern by design (they are created after
    // this stack); every role given one of those statements acknowledges it with these helpers.
    const acknowledgeTargetRoles = (fn: JitvFunction) => {
      NagSuppressions.addResourceSuppressions(
        fn.role,
        [
          {
            id: "AwsSolutions-IAM5",
            reason:
              `Target roles are the roles teams create under the jitv path ${rolePath} (JitTargetRole), after ` +
              "this stack; the path is the boundary (never role/*), and context allowedRoleArns pins exact ARNs instead. " +
              `Their revocation overflow policies live under ${OVERFLOW_POLICY_PATH} (created with each role), and only new versions are written.`,
            appliesTo: [
              ...(props.allowedRoleArns?.length
                ? []
                : [{ regex: `/^Resource::${ARN_PREFIX}:iam::${ACCOUNT}:role${escapeRegex(rolePath)}\\*$/` }]),
              {
                regex: `/^Resource::${ARN_PREFIX}:iam::${ACCOUNT}:policy${escapeRegex(OVERFLOW_POLICY_PATH)}\\*$/`,
              },
            ],
          },
        ],
        true,
      );
    };
    const acknowledgeTaggedSecrets = (fn: JitvFunction) =>
      NagSuppressions.addResourceSuppressions(
        fn.role,
        [
          {
            id: "AwsSolutions-IAM5",
            reason:
              "Secrets are named by templates written after deployment; the statement only matches secrets " +
              `tagged ${ROTATE_ON_END_TAG.key}=${ROTATE_ON_END_TAG.value} (aws:ResourceTag condition) in this account and region.`,
            appliesTo: [
              { regex: `/^Resource::${ARN_PREFIX}:secretsmanager:${REGION}:${ACCOUNT}:secret:\\*$/` },
            ],
          },
        ],
        true,
      );

    const tableEnv = { [ENV.tableName]: this.table.tableName };

    // --- Lifecycle functions and state machine -------------------------------------------
    const lifecycleFunctions = {} as Record<LifecycleState, JitvFunction>;
    for (const state of Object.keys(LIFECYCLE_STATES) as LifecycleState[]) {
      const spec = LIFECYCLE_FUNCTIONS[state] as LifecycleFunctionSpec | undefined;
      const file = entry(lifecycleEntryName(LIFECYCLE_STATES[state].substitution));
      if (spec === undefined || !existsSync(file)) {
        throw new Error(
          `lifecycle state ${state}: ${spec === undefined ? "no entry in LIFECYCLE_FUNCTIONS (infra/stacks/vending-stack.ts) declares its permissions" : `handler ${file} does not exist`}`,
        );
      }
      const callsIamOrSecrets = spec.revokes === true || spec.rotatesSecrets === true;
      const fn = new JitvFunction(this, `${state}Function`, {
        entry: file,
        description: spec.description,
        logRetention,
        timeout: callsIamOrSecrets ? Duration.seconds(60) : Duration.seconds(15),
        environment: spec.revokes ? { ...tableEnv, ...accountsEnv } : tableEnv,
        ...(callsIamOrSecrets && lifecycleConcurrency > 0
          ? { reservedConcurrentExecutions: lifecycleConcurrency }
          : {}),
      });
      useTable(fn, spec.table);
      if (spec.answersTaskTokens) fn.role.addToPrincipalPolicy(answerTaskTokens);
      if (spec.revokes) {
        fn.role.addToPrincipalPolicy(reviseTargetRoles);
        fn.role.addToPrincipalPolicy(reviseOverflowPolicies);
        acknowledgeTargetRoles(fn);
        revokesAcrossAccounts(fn);
      }
      if (spec.rotatesSecrets) {
        fn.role.addToPrincipalPolicy(rotateTaggedSecrets);
        acknowledgeTaggedSecrets(fn);
      }
      lifecycleFunctions[state] = fn;
    }
    this.lifecycleFunctions = lifecycleFunctions;

    const lifecycleLogs = new LogGroup(this, "LifecycleLogs", {
      // Step Functions' vended logs; the prefix keeps CloudWatch Logs' resource policy small.
      logGroupName: `/aws/vendedlogs/states/${stateMachineName}`,
      retention: logRetention,
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
          lifecycleFunctions[state].function.functionArn,
        ]),
      ),
      // ERROR only, and never execution data: task tokens and task ids travel in state input.
      logs: { destination: lifecycleLogs, level: LogLevel.ERROR, includeExecutionData: false },
      tracingEnabled: true,
    });
    this.stateMachine.addToRolePolicy(
      new PolicyStatement({
        sid: "InvokeLifecycleFunctions",
        actions: ["lambda:InvokeFunction"],
        resources: Object.values(lifecycleFunctions).map((fn) => fn.function.functionArn),
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

    // --- API ------------------------------------------------------------------------------
    this.apiFunction = new JitvFunction(this, "ApiFunction", {
      entry: entry("api"),
      description: "jitv HTTP API: vend, refresh, complete, revoke, read tasks",
      logRetention,
      memorySize: 512,
      // API Gateway gives up after 29 s; STS, DynamoDB and Step Functions retries fit in this.
      timeout: Duration.seconds(20),
      environment: {
        ...tableEnv,
        [ENV.issuersFile]: BUNDLED_ISSUERS_FILE,
        [ENV.stateMachineArn]: this.stateMachine.stateMachineArn,
        // A template whose role is in any other account never vends: nothing could revoke there.
        [ENV.targetAccounts]: accountsEnv[ENV.targetAccounts],
      },
      bundledFiles: [{ source: props.issuersFile, name: "issuers.json" }],
      // Stable: every JitTargetRole's trust names this role's ARN, which must survive a replacement.
      roleName: `jitv-${stage}-vend-${Aws.REGION}`,
    });
    // Task record, lease, idempotency key and active slot (one transaction), replay entries,
    // rate buckets, approvals, task updates; task and agent inventories on the indexes.
    useTable(this.apiFunction, ["GetItem", "PutItem", "UpdateItem"], { indexes: true });
    this.apiFunction.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "VendOnTargetRoles",
        actions: ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
        resources: targetRoleArns,
      }),
    );
    acknowledgeTargetRoles(this.apiFunction);
    this.apiFunction.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "StartLifecycle",
        actions: ["states:StartExecution"],
        resources: [this.stateMachine.stateMachineArn],
      }),
    );
    this.apiFunction.role.addToPrincipalPolicy(answerTaskTokens);
    this.apiFunction.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "NotifyApprovers",
        actions: ["events:PutEvents"],
        resources: [
          Stack.of(this).formatArn({ service: "events", resource: "event-bus", resourceName: "default" }),
        ],
      }),
    );

    this.api = new VendingApi(this, "Http", {
      handler: this.apiFunction.function,
      stageName: stage,
      rateLimit: props.apiRateLimit ?? DEPLOY_DEFAULTS.apiRateLimit,
      burstLimit: props.apiBurstLimit ?? DEPLOY_DEFAULTS.apiBurstLimit,
      vendRateLimit,
      vendBurstLimit: props.vendBurstLimit ?? vendRateLimit * 2,
      logRetention,
      ...(props.wafAclArn === undefined ? {} : { wafAclArn: props.wafAclArn }),
    });

    // --- TTL backstop -----------------------------------------------------------------------
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
    this.ttlStreamFunction = new JitvFunction(this, "TtlStreamFunction", {
      entry: entry("ttl-stream"),
      description: "TTL backstop: revokes, rotates, closes and prunes when a lease expires",
      logRetention,
      // A batch of up to 10 leases, each possibly several IAM calls with backoff.
      timeout: Duration.minutes(5),
      environment: { ...tableEnv, ...accountsEnv },
    });
    useTable(this.ttlStreamFunction, ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query"]);
    this.ttlStreamFunction.role.addToPrincipalPolicy(reviseTargetRoles);
    this.ttlStreamFunction.role.addToPrincipalPolicy(reviseOverflowPolicies);
    acknowledgeTargetRoles(this.ttlStreamFunction);
    revokesAcrossAccounts(this.ttlStreamFunction);
    this.ttlStreamFunction.role.addToPrincipalPolicy(rotateTaggedSecrets);
    acknowledgeTaggedSecrets(this.ttlStreamFunction);
    this.ttlStreamFunction.function.addEventSource(
      new DynamoEventSource(this.table, {
        startingPosition: StartingPosition.TRIM_HORIZON,
        batchSize: 10,
        filters: [FilterCriteria.filter(TTL_STREAM_FILTER_PATTERN)],
        reportBatchItemFailures: true,
        bisectBatchOnError: true,
        retryAttempts: 10,
        onFailure: new SqsDlq(this.deadLetterQueue),
      }),
    );
    NagSuppressions.addResourceSuppressions(
      this.ttlStreamFunction.role,
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

    // --- Secret rotation ------------------------------------------------------------------
    this.rotationFunction = new JitvFunction(this, "RotateSecretFunction", {
      entry: entry("rotate-secret"),
      description: "Secrets Manager rotation function of secrets tagged jitv:rotate-on-end=true",
      logRetention,
      timeout: Duration.seconds(60),
    });
    this.rotationFunction.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "RotateTaggedSecretValues",
        actions: [
          "secretsmanager:DescribeSecret",
          "secretsmanager:GetSecretValue",
          "secretsmanager:PutSecretValue",
          "secretsmanager:UpdateSecretVersionStage",
        ],
        resources: [taggedSecrets],
        conditions: rotateOnEndCondition,
      }),
    );
    this.rotationFunction.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "GenerateSecretValues",
        actions: ["secretsmanager:GetRandomPassword"],
        resources: ["*"],
      }),
    );
    acknowledgeTaggedSecrets(this.rotationFunction);
    NagSuppressions.addResourceSuppressions(
      this.rotationFunction.role,
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
    this.rotationFunction.function.addPermission("SecretsManagerInvoke", {
      principal: new ServicePrincipal("secretsmanager.amazonaws.com"),
      action: "lambda:InvokeFunction",
      sourceAccount: Aws.ACCOUNT_ID,
    });
    // RotateSecret checks that its caller may invoke the secret's rotation function: jitv's own,
    // and the teams' functions of secrets that rotate with their own (context rotationFunctionArns).
    const invokeRotation = new PolicyStatement({
      sid: "InvokeRotationFunctions",
      actions: ["lambda:InvokeFunction"],
      resources: [this.rotationFunction.function.functionArn, ...(props.rotationFunctionArns ?? [])],
    });
    for (const fn of [lifecycleFunctions.RotateSecrets, this.ttlStreamFunction]) {
      fn.role.addToPrincipalPolicy(invokeRotation);
    }

    // --- Alarms ---------------------------------------------------------------------------
    const alarmKey = new Key(this, "AlarmTopicKey", {
      description: `${this.stackName}: encrypts the alarm topic`,
      enableKeyRotation: true,
      // Only in-flight notifications are encrypted with it.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    // CloudWatch publishes alarm notifications to the encrypted topic.
    alarmKey.addToResourcePolicy(
      new PolicyStatement({
        sid: "CloudWatchAlarmsPublish",
        principals: [new ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey"],
        resources: ["*"],
      }),
    );
    this.alarmTopic = new Topic(this, "AlarmTopic", {
      displayName: `jitv ${stage} alarms`,
      masterKey: alarmKey,
      enforceSSL: true,
    });
    if (props.alarmEmail !== undefined) {
      this.alarmTopic.addSubscription(new EmailSubscription(props.alarmEmail));
    }

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
    const allFunctions = [
      this.apiFunction,
      ...Object.values(lifecycleFunctions),
      this.ttlStreamFunction,
      this.rotationFunction,
    ];
    // CloudWatch metric math takes at most 10 metrics: one throttle alarm per 10 functions.
    const METRICS_PER_EXPRESSION = 10;
    const throttleGroups = Array.from(
      { length: Math.ceil(allFunctions.length / METRICS_PER_EXPRESSION) },
      (_, g) => allFunctions.slice(g * METRICS_PER_EXPRESSION, (g + 1) * METRICS_PER_EXPRESSION),
    );
    const throttleAlarms = throttleGroups.map((group, g) => ({
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
    const apiStage = this.api.api.deploymentStage;
    const alarmSpecs: {
      id: string;
      description: string;
      metric: IMetric;
      threshold: number;
      evaluationPeriods?: number;
    }[] = [
      {
        id: "ApiServerErrors",
        description: "The API answered 5XX (function errors, timeouts or upstream failures)",
        metric: apiStage.metricServerError({ statistic: "Sum", period: fiveMinutes }),
        threshold: 5,
      },
      {
        id: "ApiLatency",
        description: "p99 API latency above 5 s for 15 minutes",
        metric: apiStage.metricLatency({ statistic: "p99", period: fiveMinutes }),
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
        metric: this.stateMachine.metricFailed({ statistic: "Sum", period: fiveMinutes }),
        threshold: 1,
      },
      {
        id: "TtlStreamDlqNotEmpty",
        description: "TTL-stream batches failed after every retry; their leases were not handled",
        metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          statistic: "Maximum",
          period: fiveMinutes,
        }),
        threshold: 1,
      },
      {
        id: "TtlStreamIteratorAge",
        description: "The TTL backstop lags the table stream by more than 15 minutes",
        metric: this.ttlStreamFunction.function.metric("IteratorAge", {
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
        id: "SecretRotationErrors",
        description: "The rotation function failed a Secrets Manager rotation step",
        metric: this.rotationFunction.function.metricErrors({ statistic: "Sum", period: fiveMinutes }),
        threshold: 1,
      },
    ];
    const action = new SnsAction(this.alarmTopic);
    this.alarms = alarmSpecs.map((spec) => {
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

    // --- Outputs --------------------------------------------------------------------------
    new CfnOutput(this, "ApiUrl", {
      description: "Base URL of the jitv API (append v1/tasks, healthz)",
      value: this.api.api.url,
    });
    new CfnOutput(this, "TableName", { value: this.table.tableName });
    new CfnOutput(this, "TargetAccounts", {
      description: "Accounts jitv vends into (for jitv templates put --accounts / JITV_TARGET_ACCOUNTS)",
      value: accountsEnv[ENV.targetAccounts] as string,
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
  }
}
