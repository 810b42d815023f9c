import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Logger } from "@aws-lambda-powertools/logger";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { composeLifecycle } from "../app/compose-lifecycle.js";
import type { TaskLifecycle } from "../app/lifecycle-steps.js";
import { handleTtlRecords } from "../app/ttl-backstop.js";
import { FileAuditTrail } from "../audit/file-audit-reader.js";
import { LoggerAuditLog } from "../audit/logger-audit-log.js";
import { EmfMetrics } from "../audit/metrics.js";
import { SandboxBroker } from "../credentials/sandbox-broker.js";
import { ConfigError, JitvError } from "../domain/errors.js";
import { lintTemplate } from "../domain/render.js";
import { parseTemplate, type TaskTemplate } from "../domain/template.js";
import { DriftDetector } from "../drift/detector.js";
import { DynamoDriftCounters } from "../drift/dynamo-counters.js";
import { LoggerDriftNotifier } from "../drift/logger-notifier.js";
import { type ApiCore, composeApi } from "../http/compose-api.js";
import { serveApi } from "../http/node-server.js";
import {
  type IssuerConfig,
  loadIssuerConfigFile,
  mergeIssuerConfigs,
  parseIssuerConfig,
} from "../identity/issuers.js";
import { DynamoRolePolicyWriter } from "../revocation/dynamo-role-policy-writer.js";
import { DEFAULT_OVERFLOW_POLICIES, nonWhitespaceLength } from "../revocation/policy.js";
import { DynamoSecretRotator } from "../secrets/dynamo-secret-rotator.js";
import { ensureTable } from "../store/table.js";
import { startDynamoDbLocal } from "./dynamodb-local.js";
import { FaultInjector, type FaultSpec } from "./faults.js";
import { issuerPortWarnings } from "./issuer-port-warnings.js";
import { startLocalIssuer } from "./local-issuer.js";
import { localIssuerProfiles } from "./local-issuer-profiles.js";
import { LocalLifecycleRunner, resumeLifecycles } from "./local-lifecycle.js";
import {
  loadRolePolicies,
  sandboxAssumeRoleRoute,
  sandboxAuditRoute,
  sandboxDriftRoute,
  sandboxRoutes,
} from "./routes.js";
import { StreamPoller } from "./stream-poller.js";

export const SANDBOX_TABLE = "jitv-sandbox";

export interface SandboxOptions {
  /** API port. @default 8787 */
  readonly port?: number;
  /** Local OIDC issuer port; the example templates name issuers on 8788. @default 8788 */
  readonly issuerPort?: number;
  /** DynamoDB Local port. @default 0 (a free port) */
  readonly dynamodbPort?: number;
  /** Issuers file whose profiles are added to the built-in local issuers. */
  readonly issuersFile?: string;
  /** Directory whose `*.json` templates are put at start. */
  readonly templatesDir?: string;
  /** Directory whose `*.cedar` files are stored as policy sets (named after each file) at start. */
  readonly policiesDir?: string;
  /** Directory of `{"roleArn", "policies"}` files: the target roles' own policies (default: allow all). */
  readonly rolesDir?: string;
  /** Keep DynamoDB data here between runs (default: in memory). */
  readonly dataDir?: string;
  /**
   * An already running DynamoDB Local (or compatible endpoint, loopback only) to use instead of
   * starting one; the sandbox creates its table there if missing and leaves the endpoint running.
   */
  readonly dynamodbEndpoint?: string;
  /**
   * Injected failures (CONTRACT.md section 7, `--faults`): each call to a service fails with its
   * probability, once the sandbox has started. `faultRandom` makes a run repeatable (tests).
   */
  readonly faults?: FaultSpec;
  readonly faultRandom?: () => number;
  /**
   * The AWS accounts the sandbox emulates as target accounts: templates whose role is elsewhere
   * are refused, as in a deployment. @default DEMO.accounts
   */
  readonly targetAccounts?: readonly string[];
  /** Where demo client secrets are written for `jitv token` (mode 0600). */
  readonly stateFile: string;
  readonly logger?: Logger;
  /** Per-agent vend rate (default: the deployed default). */
  readonly vendRate?: { capacity: number; refillPerSecond: number };
  /** Test seam: lifecycle executions time out after this many seconds instead of at the task's deadline. */
  readonly lifecycleTimeoutSeconds?: number;
  /** Test seam: the API core's clock (tokens, vends, approvals, reads). @default () => new Date() */
  readonly now?: () => Date;
}

/** What `jitv token` reads: the local issuers' token endpoints and the demo clients' secrets. */
export interface SandboxState {
  readonly apiUrl: string;
  readonly clients: Record<
    string,
    {
      kind: "agent" | "user";
      tokenEndpoint: string;
      secret: string;
      /** Customer users: where `jitv token --user NAME --for-agent AGENT` gets a delegation token. */
      delegationEndpoint?: string;
    }
  >;
}

export interface Sandbox {
  readonly apiUrl: string;
  readonly dynamodbEndpoint: string;
  readonly issuers: IssuerConfig;
  readonly localIssuers: { workforceAgents: string; customerAgents: string; users: string; staff: string };
  readonly templates: string[];
  readonly policySets: string[];
  /** Configuration that starts but cannot work as meant (`jitv dev` prints each line). */
  readonly warnings: readonly string[];
  readonly broker: SandboxBroker;
  readonly core: ApiCore;
  /** The document client on the sandbox's DynamoDB Local table. */
  readonly doc: DynamoDBDocumentClient;
  readonly lifecycle: TaskLifecycle;
  readonly runner: LocalLifecycleRunner;
  readonly secrets: DynamoSecretRotator;
  readonly writer: DynamoRolePolicyWriter;
  readonly state: SandboxState;
  /** The `--faults` injector (armed once started; `disarm()` lets a load run watch recovery). */
  readonly faults: FaultInjector;
  close(): Promise<void>;
}

/** Demo identities of the built-in local issuer. */
export const DEMO = {
  /** The emulated AWS accounts: the vending account and one target account (roles by ARN in each). */
  accounts: ["123456789012", "210987654321"],
  workforceAgents: ["demo-agent", "ci-agent"],
  customerAgents: ["support-agent"],
  users: [
    { id: "alice", tenant: "acme", groups: [] as string[] },
    { id: "bob", tenant: "globex", groups: [] as string[] },
    // Customer-zone staff act only within their own tenant (CONTRACT.md section 2).
    { id: "acme-admin", tenant: "acme", groups: ["jitv-admins", "jitv-approvers"] },
    { id: "acme-approver", tenant: "acme", groups: ["jitv-approvers"] },
    { id: "globex-admin", tenant: "globex", groups: ["jitv-admins", "jitv-approvers"] },
  ],
  staff: [
    { id: "admin", groups: ["jitv-admins", "jitv-approvers"] },
    { id: "pat", groups: ["jitv-approvers"] },
    { id: "quinn", groups: ["jitv-approvers"] },
  ],
} as const;

/**
 * Starts the whole sandbox on this machine: DynamoDB Local (real TTL and streams), the
 * local OIDC issuers with demo identities, and the API — the same core as the Lambdas,
 * with the {@link SandboxBroker} in place of STS. Everything listens on 127.0.0.1.
 * A failure part-way stops whatever already started.
 */
export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    const ddb = options.dynamodbEndpoint
      ? { endpoint: localEndpoint(options.dynamodbEndpoint) }
      : await startDynamoDbLocal({
          port: options.dynamodbPort ?? 0,
          ...(options.dataDir ? { dbPath: options.dataDir } : {}),
        });
    if ("stop" in ddb) closers.push(ddb.stop);
    const client = new DynamoDBClient({
      endpoint: ddb.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    });
    closers.push(async () => client.destroy());
    const { streamArn } = await ensureTable(client, SANDBOX_TABLE);

    const secret = () => randomBytes(24).toString("base64url");
    const workforceAgents = DEMO.workforceAgents.map((id) => ({ id, secret: secret() }));
    const customerAgents = DEMO.customerAgents.map((id) => ({ id, secret: secret() }));
    const users = DEMO.users.map((u) => ({ ...u, groups: [...u.groups], secret: secret() }));
    const staff = DEMO.staff.map((u) => ({ ...u, groups: [...u.groups], secret: secret() }));
    const local = await startLocalIssuer({
      port: options.issuerPort ?? 8788,
      workforceAgents,
      customerAgents,
      users,
      staff,
    });
    closers.push(local.close);

    let issuers = parseIssuerConfig(
      localIssuerProfiles(
        local,
        DEMO.users.map((u) => u.tenant),
      ),
    );
    const fileIssuers = options.issuersFile ? loadIssuerConfigFile(options.issuersFile) : undefined;
    if (fileIssuers) issuers = mergeIssuerConfigs(issuers, fileIssuers);
    const roles = loadRolePolicies(options.rolesDir);

    const broker = new SandboxBroker();
    const logger = options.logger ?? new Logger({ serviceName: "jitv-sandbox" });
    // Every event is logged as in AWS and kept for `jitv audit` (GET /v1/sandbox/audit); with --data
    // also in DIR/audit.jsonl, so the trail outlives a restart as the tasks do.
    const audit = new FileAuditTrail({
      next: new LoggerAuditLog(logger),
      ...(options.dataDir ? { file: join(options.dataDir, "audit.jsonl") } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
    const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    const tableName = SANDBOX_TABLE;
    // The roles' own policies count against IAM's inline quota, as they would in AWS.
    const writer = new DynamoRolePolicyWriter({
      client: doc,
      tableName,
      ownInlineChars: (roleArn) =>
        (roles.get(roleArn) ?? []).reduce((sum, policy) => sum + nonWhitespaceLength(policy), 0),
      // Every role carries the overflow policies a JitTargetRole creates.
      overflowSlots: () => DEFAULT_OVERFLOW_POLICIES,
    });
    const secrets = new DynamoSecretRotator({ client: doc, tableName });
    const runner = new LocalLifecycleRunner({
      steps: () => lifecycle,
      ...(options.lifecycleTimeoutSeconds ? { timeoutSeconds: options.lifecycleTimeoutSeconds } : {}),
      onError: (taskId, error) =>
        logger.error("lifecycle execution failed", {
          taskId,
          error: error instanceof Error ? error.message : "unknown",
        }),
    });
    closers.push(async () => runner.close());
    // Faults reach every caller through the same ports the real services sit behind.
    const faults = new FaultInjector(options.faults ?? {}, options.faultRandom);
    faults.instrumentDynamoDb(client);
    const lifecycle = composeLifecycle({
      doc,
      tableName,
      writer: faults.wrap("iam", writer),
      rotator: faults.wrap("secrets", secrets),
      tokens: runner,
      audit,
      metrics: new EmfMetrics({ service: "jitv-sandbox" }),
    });
    const core = composeApi({
      doc,
      tableName,
      issuers,
      broker: faults.wrap("sts", broker),
      logger,
      audit,
      lifecycle: faults.wrap("sfn", {
        start: (task: Parameters<LocalLifecycleRunner["start"]>[0]) => runner.start(task),
      }),
      tokens: runner,
      ...(options.vendRate ? { vendRate: options.vendRate } : {}),
      ...(options.now ? { now: options.now } : {}),
      targetAccounts: options.targetAccounts ?? DEMO.accounts,
      extraRoutes: ({ service, templates, roles: staff, tasks }) => [
        ...sandboxRoutes({ service, templates, writer, secrets, roles }),
        sandboxAuditRoute({ service, isAdmin: (identity) => staff.isAdmin(identity), trail: audit }),
        sandboxAssumeRoleRoute({ service, broker }),
        // The drift Lambda's detector on the sandbox's table; drift events become log lines.
        sandboxDriftRoute({
          service,
          isAdmin: (identity) => staff.isAdmin(identity),
          accounts: options.targetAccounts ?? DEMO.accounts,
          detector: new DriftDetector({
            tasks,
            templates,
            counters: new DynamoDriftCounters({
              client: doc,
              tableName,
              ...(options.now ? { now: options.now } : {}),
            }),
            tokens: runner,
            notifier: new LoggerDriftNotifier(logger),
            audit,
            ...(options.now ? { now: options.now } : {}),
          }),
        }),
      ],
    });
    const loaded = options.templatesDir ? await loadTemplates(core, secrets, options.templatesDir) : [];
    const warnings = issuerPortWarnings({
      issuerPort: Number(new URL(local.issuers.workforceAgents.issuer).port),
      templates: loaded,
      fileRules: [...(fileIssuers?.admins ?? []), ...(fileIssuers?.approvers ?? [])],
      configured: issuers.issuers.map((i) => i.issuer),
    });
    const policySets = options.policiesDir ? await loadPolicies(core, options.policiesDir) : [];
    // On kept data, the lifecycles of the last run resume before the API answers: once it does,
    // no task is left active past its deadline or ended without its revocation.
    await resumeLifecycles({
      doc,
      tableName,
      runner,
      lifecycle,
      ...(options.now ? { now: options.now } : {}),
      onError: (taskId, error) =>
        logger.error("lifecycle resume failed", {
          taskId,
          error: error instanceof Error ? error.message : "unknown",
        }),
    });
    faults.arm();

    // The TTL backstop: DynamoDB Local's real stream, consumed like the deployed event source mapping.
    const streams = new DynamoDBStreamsClient({
      endpoint: ddb.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    });
    const poller = new StreamPoller({
      client: streams,
      streamArn,
      handle: (records) => handleTtlRecords(records, lifecycle),
      onError: (error) =>
        logger.error("TTL stream handling failed", {
          error: error instanceof Error ? error.message : "unknown",
        }),
    });
    await poller.start();
    closers.push(async () => {
      await poller.stop();
      streams.destroy();
    });

    const server = await serveApi(core.api, { port: options.port ?? 8787 });
    closers.push(server.close);

    const clients: SandboxState["clients"] = {};
    for (const a of workforceAgents) {
      clients[a.id] = {
        kind: "agent",
        tokenEndpoint: local.issuers.workforceAgents.tokenEndpoint,
        secret: a.secret,
      };
    }
    for (const a of customerAgents) {
      clients[a.id] = {
        kind: "agent",
        tokenEndpoint: local.issuers.customerAgents.tokenEndpoint,
        secret: a.secret,
      };
    }
    for (const u of users) {
      clients[u.id] = {
        kind: "user",
        tokenEndpoint: local.issuers.users.tokenEndpoint,
        secret: u.secret,
        ...(local.issuers.users.delegationEndpoint
          ? { delegationEndpoint: local.issuers.users.delegationEndpoint }
          : {}),
      };
    }
    for (const u of staff) {
      clients[u.id] = { kind: "user", tokenEndpoint: local.issuers.staff.tokenEndpoint, secret: u.secret };
    }
    const state: SandboxState = { apiUrl: server.url, clients };
    mkdirSync(dirname(options.stateFile), { recursive: true });
    writeFileSync(options.stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    chmodSync(options.stateFile, 0o600);

    return {
      apiUrl: server.url,
      dynamodbEndpoint: ddb.endpoint,
      issuers,
      localIssuers: {
        workforceAgents: local.issuers.workforceAgents.issuer,
        customerAgents: local.issuers.customerAgents.issuer,
        users: local.issuers.users.issuer,
        staff: local.issuers.staff.issuer,
      },
      templates: loaded.map((t) => t.name),
      policySets,
      warnings,
      broker,
      core,
      doc,
      lifecycle,
      runner,
      secrets,
      writer,
      state,
      faults,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Stores every `*.cedar` file of `dir` as a policy set named after the file, validated like any write. */
async function loadPolicies(core: ApiCore, dir: string): Promise<string[]> {
  const names: string[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith(".cedar"))
    .sort()) {
    const name = file.slice(0, -".cedar".length);
    try {
      await core.policies.put(name, readFileSync(join(dir, file), "utf8"));
      names.push(name);
    } catch (err) {
      throw new Error(`policy set ${join(dir, file)}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return names;
}

/**
 * Puts every `*.json` template of `dir`, validated exactly like a `templates put`, and
 * creates the sandbox versions of the secrets they name.
 */
async function loadTemplates(
  core: ApiCore,
  secrets: DynamoSecretRotator,
  dir: string,
): Promise<TaskTemplate[]> {
  const loaded: TaskTemplate[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()) {
    const path = join(dir, file);
    try {
      const template = parseTemplate(JSON.parse(readFileSync(path, "utf8")));
      lintTemplate(template);
      await core.templates.put(template);
      for (const s of template.secrets) await secrets.ensure(s.arn);
      loaded.push(template);
    } catch (err) {
      const message = err instanceof JitvError || err instanceof SyntaxError ? err.message : String(err);
      throw new Error(`template ${path}: ${message}`);
    }
  }
  return loaded;
}

/**
 * The endpoint of an already running DynamoDB Local: only http(s) on a loopback address, since the
 * sandbox signs with dummy credentials and must never reach a real AWS endpoint.
 * @throws ConfigError for anything else
 */
function localEndpoint(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`--dynamodb-endpoint: not a URL: ${url}`);
  }
  if (!/^https?:$/.test(parsed.protocol) || !["127.0.0.1", "localhost", "[::1]"].includes(parsed.hostname)) {
    throw new ConfigError("--dynamodb-endpoint: must be http(s) on 127.0.0.1, localhost or [::1]");
  }
  return parsed.origin;
}
