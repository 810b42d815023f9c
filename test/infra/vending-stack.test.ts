import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { marshall } from "@aws-sdk/util-dynamodb";
import { Annotations, Capture, Match, Template } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ESM_REQUIRE_BANNER, JitvFunction } from "../../infra/constructs/jitv-function.js";
import { LIFECYCLE_FUNCTIONS, lifecycleEntryName } from "../../infra/constructs/task-lifecycle.js";
import { BUNDLED_ISSUERS_FILE } from "../../infra/constructs/vend-function.js";
import { ACCESS_LOG_FIELDS, API_ROUTES } from "../../infra/constructs/vending-api.js";
import type { VendingStack } from "../../infra/stacks/vending-stack.js";
import { isTtlLeaseExpiry } from "../../lib/app/ttl-backstop.js";
import { EmfMetrics, METRICS_NAMESPACE } from "../../lib/audit/metrics.js";
import {
  leaseItem,
  pruneLeaseItem,
  replayItem,
  TTL_ATTRIBUTE,
  tableDefinition,
} from "../../lib/store/table.js";
import { LIFECYCLE_STATES } from "../../lib/tasks/lifecycle.js";
import {
  actionsOf,
  allIdentityStatements,
  buildTestApp,
  getAtt,
  logicalId,
  type Resources,
  type Statement,
} from "./support.js";

const validateAsl = createRequire(import.meta.url)("asl-validator") as (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errors: unknown[] };

const REPO = fileURLToPath(new URL("../../", import.meta.url));
// One app for the whole file: bundling the functions is the expensive part. It is synthesized
// under cdk.out/ so that the bundles resolve @aws-sdk/* from node_modules, as Lambda's runtime does.
let outdir: string;
let stack: VendingStack;
let template: Template;
let resources: Resources;
let assemblyDir: string;

beforeAll(() => {
  // Inside the repository, so the bundles loaded below resolve node_modules; a clean clone has no cdk.out yet.
  mkdirSync(join(REPO, "cdk.out"), { recursive: true });
  outdir = mkdtempSync(join(REPO, "cdk.out", "test-"));
  const built = buildTestApp({ outdir });
  ({ stack } = built);
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Resources;
  assemblyDir = built.app.synth().directory;
});

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

const id = (construct: { node: { defaultChild?: unknown } }) => logicalId(stack, construct);
const targetRoles = {
  "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, ":iam::", { Ref: "AWS::AccountId" }, ":role/jitv/*"]],
};
const overflowPolicyArns = {
  "Fn::Join": [
    "",
    ["arn:", { Ref: "AWS::Partition" }, ":iam::", { Ref: "AWS::AccountId" }, ":policy/jitv/revocation/*"],
  ],
};
const taggedSecrets = {
  "Fn::Join": [
    "",
    [
      "arn:",
      { Ref: "AWS::Partition" },
      ":secretsmanager:",
      { Ref: "AWS::Region" },
      ":",
      { Ref: "AWS::AccountId" },
      ":secret:*",
    ],
  ],
};
const rotateOnEnd = { StringEquals: { "aws:ResourceTag/jitv:rotate-on-end": "true" } };

/** The statements of the one identity policy attached to a function's role. */
function statementsOf(fn: { role: { node: { defaultChild?: unknown } } }): Statement[] {
  const roleId = id(fn.role);
  const policies = Object.values(resources).filter(
    (r) =>
      r.Type === "AWS::IAM::Policy" &&
      (r.Properties.Roles as unknown[]).some(
        (role) => JSON.stringify(role) === JSON.stringify({ Ref: roleId }),
      ),
  );
  expect(policies).toHaveLength(1);
  return policies[0]?.Properties.PolicyDocument.Statement as Statement[];
}

/** What active tracing adds to every function's role (X-Ray takes no resource-level permissions). */
const XRAY_TRACING: Statement = {
  Effect: "Allow",
  Action: ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
  Resource: "*",
};
/** The tag every target role must carry for jitv to assume it or write on it. */
const TAGGED_TARGET = { StringEquals: { "aws:ResourceTag/jitv:target": "true" } };

/**
 * A function role's statements: exactly `expected`, plus the X-Ray statement of active tracing
 * unless `expected` holds it (merged with another `Resource: *` statement by minimizePolicies).
 */
function expectStatements(actual: Statement[], expected: Statement[]) {
  const traced = expected.some((s) => actionsOf(s).includes("xray:PutTraceSegments"))
    ? expected
    : [...expected, XRAY_TRACING];
  expect(actual).toHaveLength(traced.length);
  expect(actual).toEqual(expect.arrayContaining(traced));
}

describe("VendingStack: table", () => {
  it("is on-demand, encrypted with a rotating customer key, with PITR, TTL, a stream and deletion protection", () => {
    template.resourceCountIs("AWS::DynamoDB::Table", 1);
    const definition = tableDefinition("x");
    template.hasResource("AWS::DynamoDB::Table", {
      DeletionPolicy: "Retain",
      UpdateReplacePolicy: "Retain",
      Properties: Match.objectLike({
        KeySchema: definition.KeySchema,
        BillingMode: "PAY_PER_REQUEST",
        SSESpecification: { SSEEnabled: true, SSEType: "KMS", KMSMasterKeyId: getAtt(id(stack.tableKey)) },
        TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
        StreamSpecification: { StreamViewType: "NEW_AND_OLD_IMAGES" },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
        GlobalSecondaryIndexes: (definition.GlobalSecondaryIndexes ?? []).map((index) =>
          Match.objectLike({
            IndexName: index.IndexName,
            KeySchema: index.KeySchema,
            Projection: { ProjectionType: "ALL" },
          }),
        ),
      }),
    });
    expect(TTL_ATTRIBUTE).toBe("ttlEpoch");
    template.hasResource("AWS::KMS::Key", {
      DeletionPolicy: "Retain",
      Properties: Match.objectLike({ EnableKeyRotation: true }),
    });
  });
});

describe("VendingStack: functions", () => {
  it("bundles one arm64 Node 22 function per entry point, each with its own log group and role", () => {
    const functions = Object.entries(resources).filter(([, r]) => r.Type === "AWS::Lambda::Function");
    // The lifecycle's, then the API, TTL stream, backstop sweep, secret rotation and drift functions.
    expect(functions).toHaveLength(Object.keys(LIFECYCLE_STATES).length + 5);
    for (const [, fn] of functions) {
      expect(fn.Properties).toMatchObject({
        Architectures: ["arm64"],
        Runtime: "nodejs22.x",
        Handler: "index.handler",
        LoggingConfig: { LogGroup: { Ref: expect.any(String) } },
        Environment: { Variables: expect.objectContaining({ NODE_OPTIONS: "--enable-source-maps" }) },
      });
      const logGroup = resources[fn.Properties.LoggingConfig.LogGroup.Ref];
      expect(logGroup?.Properties.RetentionInDays).toBe(365);
    }
    // Every function role starts empty: no AWS managed policy, no inline policy.
    const lambdaRoles = Object.values(resources).filter(
      (r) =>
        r.Type === "AWS::IAM::Role" &&
        JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes("lambda.amazonaws.com"),
    );
    expect(lambdaRoles).toHaveLength(functions.length);
    for (const role of lambdaRoles) {
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      expect(role.Properties.Policies).toBeUndefined();
    }
  });

  it("traces every function with X-Ray (active tracing)", () => {
    const functions = Object.values(resources).filter((r) => r.Type === "AWS::Lambda::Function");
    expect(functions.length).toBeGreaterThan(0);
    for (const fn of functions) expect(fn.Properties.TracingConfig).toEqual({ Mode: "Active" });
  });

  it("deploys every entry point in functions/, each once", () => {
    const deployed = stack.node
      .findAll()
      .filter((c): c is JitvFunction => c instanceof JitvFunction)
      .map((fn) => relative(join(REPO, "functions"), fn.entry));
    expect(deployed.sort()).toEqual(
      readdirSync(join(REPO, "functions"))
        .filter((f) => f.endsWith(".ts"))
        .sort(),
    );
  });

  it("has a function for every Lambda state of the lifecycle, named after its substitution", () => {
    expect(Object.keys(LIFECYCLE_FUNCTIONS).sort()).toEqual(Object.keys(LIFECYCLE_STATES).sort());
    expect(lifecycleEntryName("RevokeTaskFunctionArn")).toBe("revoke-task");
    expect(lifecycleEntryName("RegisterApprovalTokenFunctionArn")).toBe("register-approval-token");
    for (const { substitution } of Object.values(LIFECYCLE_STATES)) {
      expect(existsSync(join(REPO, "functions", `${lifecycleEntryName(substitution)}.ts`))).toBe(true);
    }
  });

  it("gives the API function the table, the bundled issuers file, the state machine and the target accounts, and no secret", () => {
    // Environment-agnostic stack: its own account is the only target account.
    const accounts = { Ref: "AWS::AccountId" };
    expect(resources[id(stack.apiFunction.function)]?.Properties.Environment.Variables).toEqual({
      NODE_OPTIONS: "--enable-source-maps",
      JITV_TABLE_NAME: { Ref: id(stack.table) },
      JITV_ISSUERS_FILE: BUNDLED_ISSUERS_FILE,
      JITV_STATE_MACHINE_ARN: { Ref: id(stack.stateMachine) },
      JITV_TARGET_ACCOUNTS: accounts,
    });
    const revoking = new Set([stack.lifecycleFunctions.Revoke, stack.ttlStreamFunction]);
    for (const fn of [...Object.values(stack.lifecycleFunctions), stack.ttlStreamFunction]) {
      expect(resources[id(fn.function)]?.Properties.Environment.Variables).toEqual({
        NODE_OPTIONS: "--enable-source-maps",
        JITV_TABLE_NAME: { Ref: id(stack.table) },
        // Only the functions that revoke learn the accounts (and which one is home).
        ...(revoking.has(fn) ? { JITV_ACCOUNT_ID: accounts, JITV_TARGET_ACCOUNTS: accounts } : {}),
      });
    }
  });

  it("reserves concurrency for the functions that call IAM and Secrets Manager", () => {
    const reserved = (fn: { function: { node: { defaultChild?: unknown } } }) =>
      resources[id(fn.function)]?.Properties.ReservedConcurrentExecutions;
    expect(reserved(stack.lifecycleFunctions.Revoke)).toBe(10);
    expect(reserved(stack.lifecycleFunctions.RotateSecrets)).toBe(10);
    expect(reserved(stack.apiFunction)).toBeUndefined();
  });

  it("bundles ESM handlers that load on their own (createRequire banner, the pinned AWS SDK inside) and ship the issuers file", () => {
    const bundles = Object.values(resources)
      .filter((r) => r.Type === "AWS::Lambda::Function")
      .map((r) => join(assemblyDir, `asset.${String(r.Properties.Code.S3Key).replace(/\.zip$/, "")}`));
    const apiBundle = join(
      assemblyDir,
      `asset.${String(resources[id(stack.apiFunction.function)]?.Properties.Code.S3Key).replace(/\.zip$/, "")}`,
    );
    expect(existsSync(join(apiBundle, "issuers.json"))).toBe(true);
    for (const dir of bundles) {
      expect(readFileSync(join(dir, "index.mjs"), "utf8").startsWith(ESM_REQUIRE_BANNER)).toBe(true);
      expect(existsSync(join(dir, "index.mjs.map"))).toBe(true);
    }
    const script = `
      const results = [];
      for (const dir of JSON.parse(process.argv[1])) {
        try { results.push(typeof (await import(dir + "/index.mjs")).handler); }
        catch (error) { results.push(dir + ": " + error.message); }
      }
      console.log(JSON.stringify(results));`;
    // Run from outside the repository: a bundle that still reached for node_modules would fail here.
    const output = execFileSync(
      process.execPath,
      ["--input-type=module", "--no-warnings", "-e", script, JSON.stringify(bundles)],
      {
        cwd: tmpdir(),
        env: {
          PATH: process.env.PATH,
          AWS_REGION: "us-east-1",
          JITV_TABLE_NAME: "jitv-test",
          JITV_ISSUERS_FILE: join(apiBundle, "issuers.json"),
          JITV_STATE_MACHINE_ARN: "arn:aws:states:us-east-1:123456789012:stateMachine:jitv-test",
        },
        encoding: "utf8",
      },
    );
    expect(JSON.parse(output)).toEqual(bundles.map(() => "function"));
  });
});

describe("VendingStack: least privilege", () => {
  const table = () => getAtt(id(stack.table));
  const key = () => getAtt(id(stack.tableKey));
  const logs = (fn: { logGroup: { node: { defaultChild?: unknown } } }): Statement => ({
    Sid: "WriteOwnLogs",
    Effect: "Allow",
    Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
    Resource: getAtt(id(fn.logGroup)),
  });
  const tableItems = (...actions: string[]): Statement => ({
    Sid: "TableItems",
    Effect: "Allow",
    Action: actions.length === 1 ? (actions[0] as string) : actions,
    Resource: table(),
  });
  const tableKey = (): Statement => ({
    Sid: "TableKey",
    Effect: "Allow",
    Action: ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
    Resource: key(),
  });
  const stateMachineByName = () => ({
    "Fn::Join": [
      "",
      [
        "arn:",
        { Ref: "AWS::Partition" },
        ":states:",
        { Ref: "AWS::Region" },
        ":",
        { Ref: "AWS::AccountId" },
        `:stateMachine:${stack.stackName}-task-lifecycle`,
      ],
    ],
  });
  const answerTokens = (): Statement => ({
    Sid: "AnswerLifecycleTaskTokens",
    Effect: "Allow",
    Action: "states:SendTaskSuccess",
    Resource: stateMachineByName(),
  });
  const revocationPolicy: Statement = {
    Sid: "RevocationPolicyOnTargetRoles",
    Effect: "Allow",
    Action: [
      "iam:DeleteRolePolicy",
      "iam:GetRolePolicy",
      "iam:ListAttachedRolePolicies",
      "iam:ListRolePolicies",
      "iam:PutRolePolicy",
    ],
    Resource: targetRoles,
    Condition: TAGGED_TARGET,
  };
  // New versions of the overflow policies JitTargetRole attaches under /jitv/revocation/, nothing else.
  const overflowPolicies: Statement = {
    Sid: "RevocationOverflowPolicies",
    Effect: "Allow",
    Action: [
      "iam:CreatePolicyVersion",
      "iam:DeletePolicyVersion",
      "iam:GetPolicy",
      "iam:GetPolicyVersion",
      "iam:ListPolicyVersions",
    ],
    Resource: overflowPolicyArns,
  };
  const rotateSecrets: Statement = {
    Sid: "RotateTaggedSecrets",
    Effect: "Allow",
    Action: "secretsmanager:RotateSecret",
    Resource: taggedSecrets,
    Condition: rotateOnEnd,
  };
  // RotateSecret requires the caller to be allowed to invoke the secret's rotation function.
  const invokeRotation = (): Statement => ({
    Sid: "InvokeRotationFunctions",
    Effect: "Allow",
    Action: "lambda:InvokeFunction",
    Resource: getAtt(id(stack.rotationFunction.function)),
  });

  it("vend function: STS on the jitv role path only, its table items and indexes, start and answer the lifecycle", () => {
    const fn = stack.apiFunction;
    const indexes = (tableDefinition("x").GlobalSecondaryIndexes ?? []).map((index) => ({
      "Fn::Join": ["", [table(), `/index/${index.IndexName}`]],
    }));
    expectStatements(statementsOf(fn), [
      logs(fn),
      tableItems("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"),
      { Sid: "TableIndexes", Effect: "Allow", Action: "dynamodb:Query", Resource: indexes },
      tableKey(),
      {
        Sid: "VendOnTargetRoles",
        Effect: "Allow",
        Action: ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
        Resource: targetRoles,
        Condition: TAGGED_TARGET,
      },
      {
        Sid: "StartLifecycle",
        Effect: "Allow",
        Action: "states:StartExecution",
        Resource: { Ref: id(stack.stateMachine) },
      },
      answerTokens(),
      {
        Sid: "NotifyApprovers",
        Effect: "Allow",
        Action: "events:PutEvents",
        Resource: {
          "Fn::Join": [
            "",
            [
              "arn:",
              { Ref: "AWS::Partition" },
              ":events:",
              { Ref: "AWS::Region" },
              ":",
              { Ref: "AWS::AccountId" },
              ":event-bus/default",
            ],
          ],
        },
      },
    ]);
  });

  it("lifecycle functions: only their step's table actions, plus IAM, Secrets Manager or task tokens where the step needs it", () => {
    const f = stack.lifecycleFunctions;
    expectStatements(statementsOf(f.WaitForApproval), [
      logs(f.WaitForApproval),
      tableItems("dynamodb:GetItem", "dynamodb:UpdateItem"),
      tableKey(),
      answerTokens(),
    ]);
    expectStatements(statementsOf(f.ApprovalRefused), [
      logs(f.ApprovalRefused),
      tableItems("dynamodb:GetItem", "dynamodb:UpdateItem"),
      tableKey(),
    ]);
    expectStatements(statementsOf(f.WaitForTaskEnd), [
      logs(f.WaitForTaskEnd),
      tableItems("dynamodb:GetItem", "dynamodb:UpdateItem"),
      tableKey(),
      answerTokens(),
    ]);
    expectStatements(statementsOf(f.Revoke), [
      logs(f.Revoke),
      tableItems(
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
      ),
      tableKey(),
      revocationPolicy,
      overflowPolicies,
    ]);
    expectStatements(statementsOf(f.RotateSecrets), [
      logs(f.RotateSecrets),
      tableItems("dynamodb:GetItem", "dynamodb:UpdateItem"),
      tableKey(),
      rotateSecrets,
      invokeRotation(),
    ]);
    for (const fn of [f.CloseTask, f.LifecycleFailed]) {
      expectStatements(statementsOf(fn), [
        logs(fn),
        tableItems("dynamodb:GetItem", "dynamodb:UpdateItem"),
        tableKey(),
      ]);
    }
  });

  it("TTL backstop: what revoke, rotate, close and prune need, its stream, and its dead-letter queue", () => {
    const fn = stack.ttlStreamFunction;
    expectStatements(statementsOf(fn), [
      logs(fn),
      tableItems(
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
      ),
      tableKey(),
      revocationPolicy,
      overflowPolicies,
      rotateSecrets,
      invokeRotation(),
      {
        Effect: "Allow",
        Action: ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"],
        Resource: getAtt(id(stack.deadLetterQueue)),
      },
      // The stream poller's ListStreams and tracing's X-Ray calls: none takes a resource.
      {
        Effect: "Allow",
        Action: ["dynamodb:ListStreams", ...XRAY_TRACING.Action],
        Resource: "*",
      },
      { Effect: "Allow", Action: ["kms:Decrypt", "kms:DescribeKey"], Resource: key() },
      {
        Effect: "Allow",
        Action: ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
        Resource: getAtt(id(stack.table), "StreamArn"),
      },
    ]);
  });

  it("rotation function: the four rotation steps on tagged secrets, and random passwords", () => {
    const fn = stack.rotationFunction;
    expectStatements(statementsOf(fn), [
      logs(fn),
      {
        Sid: "RotateTaggedSecretValues",
        Effect: "Allow",
        Action: [
          "secretsmanager:DescribeSecret",
          "secretsmanager:GetSecretValue",
          "secretsmanager:PutSecretValue",
          "secretsmanager:UpdateSecretVersionStage",
        ],
        Resource: taggedSecrets,
        Condition: rotateOnEnd,
      },
      {
        Sid: "GenerateSecretValues",
        Effect: "Allow",
        Action: "secretsmanager:GetRandomPassword",
        Resource: "*",
      },
    ]);
    template.hasResourceProperties("AWS::Lambda::Permission", {
      Action: "lambda:InvokeFunction",
      FunctionName: getAtt(id(fn.function)),
      Principal: "secretsmanager.amazonaws.com",
      SourceAccount: { Ref: "AWS::AccountId" },
    });
  });

  it("no identity policy has a wildcard action, and sts/iam/secret-rotation actions appear only where intended", () => {
    const statements = allIdentityStatements(resources);
    expect(statements.length).toBeGreaterThan(30);
    for (const { statement } of statements) {
      expect(statement.Effect).toBe("Allow");
      for (const action of actionsOf(statement)) expect(action).not.toContain("*");
    }
    const holders = (prefix: string) =>
      [
        ...new Set(
          statements
            .filter(({ statement }) => actionsOf(statement).some((a) => a.startsWith(prefix)))
            .map(({ resource }) => resource),
        ),
      ].sort();
    const policyOf = (fn: { role: { node: { defaultChild?: unknown } } }) =>
      Object.entries(resources).find(
        ([, r]) =>
          r.Type === "AWS::IAM::Policy" &&
          JSON.stringify(r.Properties.Roles) === JSON.stringify([{ Ref: id(fn.role) }]),
      )?.[0];
    expect(holders("sts:")).toEqual([policyOf(stack.apiFunction)]);
    expect(holders("iam:")).toEqual(
      [
        policyOf(stack.lifecycleFunctions.Revoke),
        policyOf(stack.ttlStreamFunction),
        policyOf(stack.backstopSweepFunction),
      ].sort(),
    );
    expect(holders("secretsmanager:RotateSecret")).toEqual(
      [
        policyOf(stack.lifecycleFunctions.RotateSecrets),
        policyOf(stack.ttlStreamFunction),
        policyOf(stack.backstopSweepFunction),
      ].sort(),
    );
    // Every statement naming target roles names exactly the jitv role path (or its overflow policies).
    for (const { statement } of statements) {
      if (actionsOf(statement).some((a) => a.startsWith("sts:") || a.startsWith("iam:"))) {
        const overflow = statement.Sid === "RevocationOverflowPolicies";
        expect(statement.Resource).toEqual(overflow ? overflowPolicyArns : targetRoles);
        // Roles only when tagged jitv:target=true; the overflow policies by their path alone.
        expect(statement.Condition).toEqual(overflow ? undefined : TAGGED_TARGET);
      }
    }
  });
});

/**
 * Lambda event filtering, for the syntax a filter of the TTL stream may use: an object matches
 * when each of its keys matches the record's field of that name; an array lists the values the
 * field may equal (so the field must exist). Any other operator (prefix, exists, numeric, …) is
 * not modelled, and fails the test rather than matching silently.
 */
function lambdaFilterMatches(pattern: unknown, value: unknown): boolean {
  if (Array.isArray(pattern)) {
    for (const allowed of pattern) {
      if (typeof allowed === "object" && allowed !== null) {
        throw new Error(`filter operator ${JSON.stringify(allowed)} is not modelled by this test`);
      }
    }
    return value !== undefined && pattern.includes(value);
  }
  if (typeof pattern === "object" && pattern !== null) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
    return Object.entries(pattern).every(([key, inner]) =>
      lambdaFilterMatches(inner, (value as Record<string, unknown>)[key]),
    );
  }
  throw new Error(`a filter's leaves are arrays of values, not ${JSON.stringify(pattern)}`);
}

/** A DynamoDB stream record as Lambda delivers it (NEW_AND_OLD_IMAGES). */
function lambdaStreamRecord(
  eventName: "INSERT" | "MODIFY" | "REMOVE",
  item: Record<string, unknown>,
  userIdentity?: { type: string; principalId: string },
) {
  const image = marshall(item);
  return {
    eventID: "c4ca4238a0b923820dcc509a6f75849b",
    eventName,
    eventVersion: "1.1",
    eventSource: "aws:dynamodb",
    awsRegion: "us-east-1",
    dynamodb: {
      ApproximateCreationDateTime: 1_893_456_900,
      Keys: marshall({ pk: item.pk, sk: item.sk }),
      ...(eventName === "INSERT" ? {} : { OldImage: image }),
      ...(eventName === "REMOVE" ? {} : { NewImage: image }),
      SequenceNumber: "111100000000012345678901",
      SizeBytes: 212,
      StreamViewType: "NEW_AND_OLD_IMAGES",
    },
    ...(userIdentity ? { userIdentity } : {}),
    eventSourceARN: "arn:aws:dynamodb:us-east-1:123456789012:table/jitv/stream/2030-01-01T00:00:00.000",
  };
}

describe("VendingStack: TTL-stream backstop", () => {
  it("maps the table stream with partial batch failures, bisect, retries and a DLQ", () => {
    template.resourceCountIs("AWS::Lambda::EventSourceMapping", 1);
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      FunctionName: { Ref: id(stack.ttlStreamFunction.function) },
      EventSourceArn: getAtt(id(stack.table), "StreamArn"),
      StartingPosition: "TRIM_HORIZON",
      FilterCriteria: { Filters: [{ Pattern: Match.anyValue() }] },
      FunctionResponseTypes: ["ReportBatchItemFailures"],
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: 10,
      DestinationConfig: { OnFailure: { Destination: getAtt(id(stack.deadLetterQueue)) } },
    });
  });

  it("filters the stream down to leases deleted by DynamoDB's TTL service, as the handler does", () => {
    const pattern = new Capture();
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      FilterCriteria: { Filters: [{ Pattern: pattern }] },
    });
    const filter = JSON.parse(pattern.asString()) as unknown;
    const ttl = { type: "Service", principalId: "dynamodb.amazonaws.com" };
    const taskLease = leaseItem("tsk_01j9zx3c5v7b9n1m3k5h7g9f2d", "2030-01-01T00:15:00Z");
    const pruneLease = pruneLeaseItem(
      "arn:aws:iam::123456789012:role/jitv/reports-reader",
      "tsk_01j9zx3c5v7b9n1m3k5h7g9f2d",
      "2030-01-01T00:15:00Z",
    );
    const usedToken = replayItem("https://issuer.example", "jti-1", 1_893_456_900, 1_893_457_200);
    const cases = [
      ["a task lease removed by TTL", lambdaStreamRecord("REMOVE", taskLease, ttl), true],
      ["a prune lease removed by TTL", lambdaStreamRecord("REMOVE", pruneLease, ttl), true],
      ["a lease deleted by a user (no identity)", lambdaStreamRecord("REMOVE", taskLease), false],
      [
        "a lease deleted by another service",
        lambdaStreamRecord("REMOVE", taskLease, { type: "Service", principalId: "backup.amazonaws.com" }),
        false,
      ],
      [
        "a lease deleted by an IAM user named like the TTL service",
        lambdaStreamRecord("REMOVE", taskLease, { type: "User", principalId: "dynamodb.amazonaws.com" }),
        false,
      ],
      ["a used token id removed by TTL", lambdaStreamRecord("REMOVE", usedToken, ttl), false],
      ["a lease written", lambdaStreamRecord("INSERT", taskLease), false],
      ["a lease updated", lambdaStreamRecord("MODIFY", taskLease), false],
    ] as const;
    for (const [what, record, delivered] of cases) {
      expect(lambdaFilterMatches(filter, record), what).toBe(delivered);
      // The sandbox's stream poller applies the handler's own check; both must agree.
      expect(isTtlLeaseExpiry(record), what).toBe(delivered);
    }
  });

  it("keeps failed batches in an encrypted queue that refuses plain HTTP", () => {
    template.hasResourceProperties("AWS::SQS::Queue", {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    template.hasResourceProperties("AWS::SQS::QueuePolicy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Deny",
            Action: "sqs:*",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ]),
      },
    });
  });
});

describe("VendingStack: API", () => {
  it("is a regional REST API accepting TLS 1.2 and up only", () => {
    template.hasResourceProperties("AWS::ApiGateway::RestApi", {
      EndpointConfiguration: { Types: ["REGIONAL"] },
      SecurityPolicy: "TLS_1_2",
    });
  });

  it("has one resource per contract route, each a Lambda proxy to the API function", () => {
    const paths = new Set(API_ROUTES.map((r) => r.path));
    template.resourceCountIs("AWS::ApiGateway::Method", API_ROUTES.length);
    // Resources: every path segment once (v1, tasks, {taskId}, ...).
    const segments = new Set<string>();
    for (const path of paths) {
      const parts = path.split("/").filter(Boolean);
      for (let i = 1; i <= parts.length; i++) segments.add(parts.slice(0, i).join("/"));
    }
    template.resourceCountIs("AWS::ApiGateway::Resource", segments.size);
    expect(API_ROUTES.map((r) => `${r.method} ${r.path}`)).toEqual([
      "GET /healthz",
      "GET /v1/openapi.json",
      "POST /v1/tasks",
      "GET /v1/tasks",
      "GET /v1/tasks/{taskId}",
      "POST /v1/tasks/{taskId}/credentials",
      "POST /v1/tasks/{taskId}/complete",
      "POST /v1/tasks/{taskId}/revoke",
      "POST /v1/tasks/{taskId}/approve",
      "POST /v1/tasks/{taskId}/deny",
      "GET /v1/agents",
    ]);
    const uri = new Capture();
    template.allResourcesProperties("AWS::ApiGateway::Method", {
      AuthorizationType: "NONE",
      RequestValidatorId: Match.anyValue(),
      Integration: { Type: "AWS_PROXY", IntegrationHttpMethod: "POST", Uri: uri },
    });
    expect(JSON.stringify(uri.asObject())).toContain(id(stack.apiFunction.function));
    template.hasResourceProperties("AWS::ApiGateway::Method", {
      HttpMethod: "GET",
      RequestParameters: { "method.request.path.taskId": true },
    });
  });

  it("bounds and checks the body of POST /v1/tasks and /revoke before the function runs", () => {
    template.hasResourceProperties("AWS::ApiGateway::RequestValidator", {
      ValidateRequestBody: true,
      ValidateRequestParameters: true,
    });
    const schema = new Capture();
    template.hasResourceProperties("AWS::ApiGateway::Model", { Name: "VendRequest", Schema: schema });
    expect(schema.asObject()).toMatchObject({
      type: "object",
      additionalProperties: false,
      required: ["template"],
      properties: {
        template: { maxLength: 64 },
        purpose: { maxLength: 256 },
        subjectToken: { maxLength: 8192 },
        parameters: { maxProperties: 32, additionalProperties: false },
      },
    });
    template.hasResourceProperties("AWS::ApiGateway::Method", {
      HttpMethod: "POST",
      RequestModels: { "application/json": Match.anyValue() },
    });
    template.hasResourceProperties("AWS::ApiGateway::Model", { Name: "RevokeRequest" });
  });

  it("throttles the stage and, tighter, POST /v1/tasks; logs JSON access lines and errors without data; traces", () => {
    const format = new Capture();
    template.hasResourceProperties("AWS::ApiGateway::Stage", {
      StageName: "dev",
      TracingEnabled: true,
      AccessLogSetting: { DestinationArn: Match.anyValue(), Format: format },
      MethodSettings: [
        {
          HttpMethod: "*",
          ResourcePath: "/*",
          ThrottlingRateLimit: 50,
          ThrottlingBurstLimit: 100,
          LoggingLevel: "ERROR",
          DataTraceEnabled: false,
        },
        {
          HttpMethod: "POST",
          ResourcePath: "/~1v1~1tasks",
          ThrottlingRateLimit: 10,
          ThrottlingBurstLimit: 20,
          LoggingLevel: "ERROR",
          DataTraceEnabled: false,
        },
      ],
    });
    const line = JSON.parse(format.asString()) as Record<string, string>;
    expect(line).toEqual(ACCESS_LOG_FIELDS);
    expect(format.asString()).not.toMatch(/header|authorization|requestOverride|body/i);
    template.hasResourceProperties("AWS::Logs::LogGroup", {
      LogGroupName: Match.objectLike({
        "Fn::Join": ["", ["API-Gateway-Execution-Logs_", Match.anyValue(), "/dev"]],
      }),
      RetentionInDays: 365,
    });
  });

  it("answers gateway errors (bad body, throttled, unknown route) in the contract's error shape", () => {
    const expectError = (type: string, status: string, code: string) =>
      template.hasResourceProperties("AWS::ApiGateway::GatewayResponse", {
        ResponseType: type,
        StatusCode: status,
        ResponseTemplates: {
          "application/json": Match.serializedJson({ error: { code, message: Match.anyValue() } }),
        },
      });
    expectError("BAD_REQUEST_BODY", "400", "invalid_request");
    expectError("THROTTLED", "429", "rate_limited");
    expectError("MISSING_AUTHENTICATION_TOKEN", "404", "not_found");
    expectError("DEFAULT_5XX", "500", "internal");
  });

  it("associates no WAF unless asked to", () => {
    template.resourceCountIs("AWS::WAFv2::WebACLAssociation", 0);
  });
});

describe("VendingStack: lifecycle state machine", () => {
  it("is a Standard state machine logging ERROR without execution data, traced", () => {
    template.hasResourceProperties("AWS::StepFunctions::StateMachine", {
      StateMachineType: "STANDARD",
      StateMachineName: `${stack.stackName}-task-lifecycle`,
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: {
        Level: "ERROR",
        IncludeExecutionData: false,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: Match.anyValue() } }],
      },
    });
  });

  it("substitutes each Lambda state's function ARN, and the result is valid ASL", () => {
    const definition = new Capture();
    const substitutions = new Capture();
    template.hasResourceProperties("AWS::StepFunctions::StateMachine", {
      DefinitionString: definition,
      DefinitionSubstitutions: substitutions,
    });
    const expected = Object.fromEntries(
      (Object.keys(LIFECYCLE_STATES) as (keyof typeof LIFECYCLE_STATES)[]).map((state) => [
        LIFECYCLE_STATES[state].substitution,
        getAtt(id(stack.lifecycleFunctions[state].function)),
      ]),
    );
    expect(substitutions.asObject()).toEqual(expected);

    let text = definition.asString();
    for (const name of Object.keys(expected)) {
      expect(text).toContain(`\${${name}}`);
      text = text.replaceAll(`\${${name}}`, `arn:aws:lambda:us-east-1:123456789012:function:${name}`);
    }
    expect(text).not.toMatch(/\$\{/);
    const result = validateAsl(JSON.parse(text));
    expect(result.errors).toEqual([]);
    expect(result.isValid).toBe(true);
  });

  it("may invoke exactly the lifecycle functions", () => {
    const roleId = resources[id(stack.stateMachine)]?.Properties.RoleArn["Fn::GetAtt"][0] as string;
    const invoke = allIdentityStatements(resources).filter(
      ({ resource, statement }) =>
        actionsOf(statement).includes("lambda:InvokeFunction") &&
        JSON.stringify(resources[resource]?.Properties.Roles) === JSON.stringify([{ Ref: roleId }]),
    );
    expect(invoke).toHaveLength(1);
    expect(invoke[0]?.statement.Resource).toEqual(
      expect.arrayContaining(Object.values(stack.lifecycleFunctions).map((fn) => getAtt(id(fn.function)))),
    );
    expect(invoke[0]?.statement.Resource).toHaveLength(Object.keys(LIFECYCLE_STATES).length);
  });
});

describe("VendingStack: alarms and outputs", () => {
  it("alarms on exactly the metrics the functions emit (namespace, name and dimension of an EMF line)", () => {
    const alarms = Object.values(template.findResources("AWS::CloudWatch::Alarm"));
    for (const name of [
      "RevocationFailed",
      "RevocationFallback",
      "StsThrottled",
      "TaskExpiredByBackstop",
    ] as const) {
      // What a deployed function writes: one EMF line, as CloudWatch will turn it into a metric.
      const lines: string[] = [];
      new EmfMetrics({ write: (line) => lines.push(line) }).count(name);
      const emitted = JSON.parse(lines[0] ?? "{}");
      const [definition] = emitted._aws.CloudWatchMetrics;
      const dimensions = (definition.Dimensions[0] as string[]).map((dim) => ({
        Name: dim,
        Value: emitted[dim],
      }));
      const alarm = alarms.find((a) => a.Properties.MetricName === name);
      expect(alarm?.Properties).toMatchObject({ Namespace: definition.Namespace, Dimensions: dimensions });
      expect(definition.Metrics).toEqual([{ Name: name, Unit: "Count" }]);
    }
  });

  it("alarms on API 5XX and latency, revocation failures and fallbacks, failed executions, DLQ depth, STS throttling and throttles", () => {
    // 11 named alarms (backstop sweep failures among them) and one throttle alarm per 10 functions (12).
    template.resourceCountIs("AWS::CloudWatch::Alarm", 13);
    // Metric math takes at most 10 metrics: throttle alarms are split to cover every function.
    const throttleAlarms = Object.values(template.findResources("AWS::CloudWatch::Alarm")).filter((a) =>
      String(a.Properties.AlarmDescription).startsWith("A jitv function was throttled"),
    );
    const perAlarm = throttleAlarms.map(
      (a) => a.Properties.Metrics.filter((m: { MetricStat?: unknown }) => m.MetricStat).length,
    );
    for (const n of perAlarm) expect(n).toBeLessThanOrEqual(10);
    // Every function: API, the lifecycle states', the TTL stream, the sweep, rotation and drift.
    expect(perAlarm.reduce((a, b) => a + b, 0)).toBe(Object.keys(stack.lifecycleFunctions).length + 5);
    const topic = { Ref: id(stack.alarmTopic) };
    template.allResourcesProperties("AWS::CloudWatch::Alarm", { AlarmActions: [topic] });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/ApiGateway",
      MetricName: "5XXError",
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/ApiGateway",
      MetricName: "Latency",
      ExtendedStatistic: "p99",
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: METRICS_NAMESPACE,
      MetricName: "RevocationFailed",
      Dimensions: [{ Name: "service", Value: "jitv" }],
      Threshold: 1,
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: METRICS_NAMESPACE,
      MetricName: "RevocationFallback",
      Dimensions: [{ Name: "service", Value: "jitv" }],
      Threshold: 1,
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: METRICS_NAMESPACE,
      MetricName: "StsThrottled",
      Dimensions: [{ Name: "service", Value: "jitv" }],
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/States",
      MetricName: "ExecutionsFailed",
      Dimensions: [{ Name: "StateMachineArn", Value: { Ref: id(stack.stateMachine) } }],
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Namespace: "AWS/SQS",
      MetricName: "ApproximateNumberOfMessagesVisible",
      Dimensions: [{ Name: "QueueName", Value: getAtt(id(stack.deadLetterQueue), "QueueName") }],
    });
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      Metrics: Match.arrayWith([Match.objectLike({ Expression: Match.stringLikeRegexp("t0 \\+ t1") })]),
    });
  });

  it("sends alarms to an encrypted topic that CloudWatch may publish to and that refuses plain HTTP", () => {
    template.hasResourceProperties("AWS::SNS::Topic", { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties("AWS::KMS::Key", {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: "cloudwatch.amazonaws.com" },
            Action: ["kms:Decrypt", "kms:GenerateDataKey"],
          }),
        ]),
      },
    });
    template.resourceCountIs("AWS::SNS::Subscription", 0);
  });

  it("outputs the API URL, table name, state machine ARN and the vend function's role ARN", () => {
    template.hasOutput("ApiUrl", {});
    template.hasOutput("TableName", { Value: { Ref: id(stack.table) } });
    template.hasOutput("StateMachineArn", { Value: { Ref: id(stack.stateMachine) } });
    template.hasOutput("VendFunctionRoleArn", { Value: getAtt(id(stack.apiFunction.role)) });
    // A fixed name, so the ARN every JitTargetRole trusts survives a replacement of the role.
    expect(resources[id(stack.apiFunction.role)]?.Properties.RoleName).toEqual({
      "Fn::Join": ["", ["jitv-dev-vend-", { Ref: "AWS::Region" }]],
    });
  });
});

describe("VendingStack: cdk-nag", () => {
  it("passes AwsSolutionsChecks with no unacknowledged error or warning", () => {
    const annotations = Annotations.fromStack(stack);
    const findings = [
      ...annotations.findError("*", Match.stringLikeRegexp("AwsSolutions-.*")),
      ...annotations.findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*")),
    ].map((f) => `${f.id}: ${String(f.entry.data).slice(0, 80)}`);
    expect(findings).toEqual([]);
  });

  it("gives every acknowledgement a reason", () => {
    const suppressed = Object.values(template.toJSON().Resources as Resources).flatMap(
      (r) => (r.Metadata?.cdk_nag?.rules_to_suppress ?? []) as { id: string; reason: string }[],
    );
    expect(suppressed.length).toBeGreaterThan(0);
    for (const rule of suppressed) expect(rule.reason.length).toBeGreaterThan(40);
  });
});
