import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import { PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Architecture, Runtime, Tracing } from "aws-cdk-lib/aws-lambda";
import { type ICommandHooks, NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";

/**
 * The Lambda runtime of every jitv function. Node 22 is the LTS line the code is developed and
 * tested on (package.json `engines`); moving to a newer LTS is this one line.
 */
export const JITV_RUNTIME = Runtime.NODEJS_22_X;

/**
 * ESM bundles lack what the CommonJS code esbuild inlines expects: `require` (for Node
 * built-ins) and `__dirname`/`__filename` (e.g. the Cedar WebAssembly loader reads its `.wasm`
 * file next to itself).
 */
export const ESM_REQUIRE_BANNER = [
  "import { createRequire as __jitvCreateRequire } from 'node:module';",
  "import { fileURLToPath as __jitvFileURLToPath } from 'node:url';",
  "import { dirname as __jitvDirname } from 'node:path';",
  "const require = __jitvCreateRequire(import.meta.url);",
  "const __filename = __jitvFileURLToPath(import.meta.url);",
  "const __dirname = __jitvDirname(__filename);",
].join(" ");

/** A file copied next to the bundled handler (read at cold start from `/var/task/<name>`). */
export interface BundledFile {
  /** Absolute path of the file on the machine running `cdk synth`. */
  readonly source: string;
  /** Name of the copy in the bundle. */
  readonly name: string;
  /**
   * Copy it only when the bundle mentions `name` (a dependency's runtime file that only some
   * handlers pull in).
   * @default false
   */
  readonly onlyIfReferenced?: boolean;
}

/**
 * Files that bundled dependencies read from next to themselves at run time, which esbuild
 * cannot inline: Cedar's WebAssembly module (4 MB, copied only into bundles that load Cedar).
 */
export function dependencyRuntimeFiles(): BundledFile[] {
  const require = createRequire(import.meta.url);
  const files: BundledFile[] = [];
  try {
    const cedar = dirname(require.resolve("@cedar-policy/cedar-wasm/nodejs"));
    files.push({
      source: join(cedar, "cedar_wasm_bg.wasm"),
      name: "cedar_wasm_bg.wasm",
      onlyIfReferenced: true,
    });
  } catch {
    // Not installed: no bundle can reference it either (esbuild would have failed).
  }
  return files;
}

export interface JitvFunctionProps {
  /** Absolute path of the handler file (`functions/*.ts`); it must export `handler`. */
  readonly entry: string;
  /** What the function is for (the Lambda description). */
  readonly description: string;
  /** Retention of the function's log group. */
  readonly logRetention: RetentionDays;
  /** @default Duration.seconds(30) */
  readonly timeout?: Duration;
  /** @default 256 */
  readonly memorySize?: number;
  /** Environment variables; never a secret (they are visible to anyone who may read the function). */
  readonly environment?: Readonly<Record<string, string>>;
  /** @default - unreserved */
  readonly reservedConcurrentExecutions?: number;
  /**
   * A fixed name for the function's role, when other accounts' policies name it (the vend
   * function's role, trusted by every JitTargetRole): replacing the role then keeps its ARN.
   * @default - a name CloudFormation generates
   */
  readonly roleName?: string;
  /** Files copied into the bundle after esbuild ran. @default - none */
  readonly bundledFiles?: readonly BundledFile[];
}

/**
 * One jitv Lambda: a `NodejsFunction` bundled locally by esbuild (arm64, ESM, minified, source
 * maps, the AWS SDK bundled at the versions `package-lock.json` pins: it imports in about half
 * the time of the runtime's copy, and runs what the tests ran), its own role that starts with no permissions at all
 * (not even the AWS managed basic execution policy), and its own log group with a retention
 * whose ARN is the only place the role may write logs, and X-Ray active tracing. Each caller adds exactly the statements
 * its function needs to `role`.
 */
export class JitvFunction extends Construct {
  readonly function: NodejsFunction;
  readonly role: Role;
  readonly logGroup: LogGroup;
  /** The handler file this function bundles. */
  readonly entry: string;

  constructor(scope: Construct, id: string, props: JitvFunctionProps) {
    super(scope, id);
    this.entry = props.entry;
    this.logGroup = new LogGroup(this, "Logs", {
      retention: props.logRetention,
      // Audit events live in these logs: they outlive the stack.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new Role(this, "Role", {
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
      description: `${Stack.of(this).stackName} ${id}: ${props.description}`.slice(0, 1000),
      ...(props.roleName === undefined ? {} : { roleName: props.roleName }),
    });
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "WriteOwnLogs",
        actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
        resources: [this.logGroup.logGroupArn],
      }),
    );

    const files = [...(props.bundledFiles ?? []), ...dependencyRuntimeFiles()];
    const commandHooks: ICommandHooks = {
      beforeBundling: () => [],
      beforeInstall: () => [],
      afterBundling: (_inputDir, outputDir) =>
        files.map((file) => {
          const copy = `cp ${shellQuote(file.source)} ${shellQuote(`${outputDir}/${file.name}`)}`;
          if (!file.onlyIfReferenced) return copy;
          return `if grep -qF ${shellQuote(file.name)} ${shellQuote(`${outputDir}/index.mjs`)}; then ${copy}; fi`;
        }),
    };

    this.function = new NodejsFunction(this, "Function", {
      entry: props.entry,
      handler: "handler",
      description: props.description,
      runtime: JITV_RUNTIME,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout ?? Duration.seconds(30),
      role: this.role,
      logGroup: this.logGroup,
      // X-Ray active tracing: CDK grants the role xray:PutTraceSegments and xray:PutTelemetryRecords.
      tracing: Tracing.ACTIVE,
      // Stack traces point into the TypeScript sources through the bundled source map.
      environment: { NODE_OPTIONS: "--enable-source-maps", ...props.environment },
      ...(props.reservedConcurrentExecutions === undefined
        ? {}
        : { reservedConcurrentExecutions: props.reservedConcurrentExecutions }),
      bundling: {
        format: OutputFormat.ESM,
        target: "node22",
        mainFields: ["module", "main"],
        banner: ESM_REQUIRE_BANNER,
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // Nothing external: the pinned AWS SDK is bundled (faster cold import than the runtime's).
        externalModules: [],
        forceDockerBundling: false,
        commandHooks,
      },
    });
    NagSuppressions.addResourceSuppressions(
      this.role,
      [
        {
          id: "AwsSolutions-IAM5",
          reason:
            "Added by CDK for active tracing: X-Ray's PutTraceSegments and PutTelemetryRecords do not support " +
            "resource-level permissions, so IAM only accepts Resource * for them.",
          appliesTo: ["Resource::*"],
        },
      ],
      true,
    );
    NagSuppressions.addResourceSuppressions(this.function, [
      {
        id: "AwsSolutions-L1",
        reason:
          "Pinned to nodejs22.x (JITV_RUNTIME), an LTS runtime Lambda supports into 2027 and the Node line the " +
          "code is tested on; a newer runtime is adopted deliberately, with the test suite, not by a rule.",
      },
    ]);
  }
}

/** Quotes a path for the POSIX shell that runs the bundling hooks. */
function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
