import { resolve } from "node:path";
import { parseAccountList } from "../lib/domain/accounts.js";
import { ConfigError } from "../lib/domain/errors.js";
import { type IssuerConfig, loadIssuerConfigFile } from "../lib/identity/issuers.js";

/** Retention periods CloudWatch Logs accepts (days). */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** Where a deployed jitv reads its configuration: CDK context (`-c key=value` or `cdk.json`). */
export interface DeployConfig {
  /** Absolute path of the trusted-issuers file, validated like the functions will read it. */
  readonly issuersFile: string;
  /** The validated issuers configuration (the file copied into the API function's bundle). */
  readonly issuers: IssuerConfig;
  /** Deployment stage: part of the stack name and of the API stage name. */
  readonly stage: string;
  /** IAM path of the roles agents may assume, e.g. `/jitv/`. */
  readonly rolePath: string;
  /** When given, the only roles jitv may vend and revoke on (instead of the whole role path). */
  readonly allowedRoleArns?: readonly string[];
  /**
   * Other AWS accounts jitv may vend into: each has deployed the target-account stack (its revoker
   * role), through which revocation writes there.
   */
  readonly targetAccounts?: readonly string[];
  /** Teams' own Secrets Manager rotation functions that jitv's rotate step may invoke. */
  readonly rotationFunctionArns?: readonly string[];
  /** E-mail address subscribed to the alarm topic. */
  readonly alarmEmail?: string;
  /** Stage-wide steady-state request rate (requests per second). */
  readonly apiRateLimit: number;
  /** Stage-wide burst (requests). */
  readonly apiBurstLimit: number;
  /** `POST /v1/tasks` steady-state request rate (requests per second). */
  readonly vendRateLimit: number;
  /** `POST /v1/tasks` burst (requests). */
  readonly vendBurstLimit: number;
  /** Regional WAFv2 web ACL to associate with the API stage. */
  readonly wafAclArn?: string;
  /** Retention of every log group the stack creates (days). */
  readonly logRetentionDays: number;
  /** Reserved concurrency of the functions that call IAM and Secrets Manager; 0 leaves them unreserved. */
  readonly lifecycleConcurrency: number;
}

/** Defaults of the optional context values (docs/deploy.md lists them). */
export const DEPLOY_DEFAULTS = {
  stage: "dev",
  rolePath: "/jitv/",
  apiRateLimit: 50,
  apiBurstLimit: 100,
  vendRateLimit: 10,
  logRetentionDays: 365,
  lifecycleConcurrency: 10,
} as const;

/** The context keys jitv reads. */
export const CONTEXT_KEYS = [
  "issuersFile",
  "stage",
  "rolePath",
  "allowedRoleArns",
  "targetAccounts",
  "rotationFunctionArns",
  "alarmEmail",
  "apiRateLimit",
  "apiBurstLimit",
  "vendRateLimit",
  "vendBurstLimit",
  "wafAclArn",
  "logRetentionDays",
  "lifecycleConcurrency",
] as const;

type ContextKey = (typeof CONTEXT_KEYS)[number];

/** A Lambda function ARN (optionally with a version or alias), no wildcard. */
const LAMBDA_ARN =
  /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]+)?$/;
const STAGE = /^[a-z][a-z0-9-]{0,15}$/;
// An IAM path: starts and ends with "/", segments of IAM's path characters. "/" alone is refused
// below: it would let jitv assume and edit every role in the account.
const ROLE_PATH = /^\/(?:[\w+=,.@-]+\/)+$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/;
const WAF_ACL_ARN = /^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:\d{12}:regional\/webacl\/[\w-]{1,128}\/[\w-]{1,128}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/**
 * Reads and validates the deployment's CDK context. Every problem is reported at once, each
 * naming the context key and what is wrong, so `cdk synth` fails before anything is built.
 *
 * @param context reads one context value (`app.node.tryGetContext`)
 * @param cwd directory a relative `issuersFile` is resolved against
 * @throws ConfigError listing every invalid or missing value
 * @example
 * const config = readDeployConfig((key) => app.node.tryGetContext(key));
 */
export function readDeployConfig(context: (key: ContextKey) => unknown, cwd = process.cwd()): DeployConfig {
  const problems: string[] = [];
  const text = (key: ContextKey): string | undefined => {
    const value = context(key);
    if (value === undefined || value === null || value === "") return undefined;
    if (typeof value !== "string") {
      problems.push(`${key}: must be a string`);
      return undefined;
    }
    return value.trim();
  };
  const integer = (key: ContextKey, fallback: number, min: number, max: number): number => {
    const value = context(key);
    if (value === undefined || value === null || value === "") return fallback;
    const n = typeof value === "number" ? value : Number(String(value).trim());
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${key}: must be a whole number from ${min} to ${max}, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return n;
  };

  const issuersPath = text("issuersFile");
  let issuers: IssuerConfig | undefined;
  let issuersFile = "";
  if (issuersPath === undefined) {
    problems.push(
      "issuersFile: required; pass -c issuersFile=path/to/issuers.json (the trusted OIDC issuers; see docs/reference.md)",
    );
  } else {
    issuersFile = resolve(cwd, issuersPath);
    try {
      issuers = loadIssuerConfigFile(issuersFile);
    } catch (error) {
      problems.push(`issuersFile: ${(error as Error).message}`);
    }
  }

  const stage = text("stage") ?? DEPLOY_DEFAULTS.stage;
  if (!STAGE.test(stage)) {
    problems.push(
      `stage: must be 1-16 lowercase letters, digits or '-', starting with a letter, got "${stage}"`,
    );
  }

  const rolePath = text("rolePath") ?? DEPLOY_DEFAULTS.rolePath;
  if (!ROLE_PATH.test(rolePath)) {
    problems.push(
      `rolePath: must be an IAM path below the root such as "/jitv/" (starting and ending with "/"), got "${rolePath}"`,
    );
  }

  const allowedRaw = text("allowedRoleArns");
  let allowedRoleArns: string[] | undefined;
  if (allowedRaw !== undefined) {
    allowedRoleArns = allowedRaw
      .split(",")
      .map((arn) => arn.trim())
      .filter((arn) => arn !== "");
    const bad = allowedRoleArns.filter((arn) => !ROLE_ARN.test(arn));
    if (allowedRoleArns.length === 0) problems.push("allowedRoleArns: must list at least one role ARN");
    if (bad.length > 0) {
      problems.push(
        `allowedRoleArns: not IAM role ARNs (wildcards are not accepted; use rolePath): ${bad.join(", ")}`,
      );
    }
  }

  const accountsRaw = text("targetAccounts");
  let targetAccounts: string[] | undefined;
  if (accountsRaw !== undefined) {
    try {
      targetAccounts = parseAccountList(accountsRaw);
    } catch (error) {
      problems.push(`targetAccounts: ${(error as Error).message}`);
    }
  }

  const rotationRaw = text("rotationFunctionArns");
  let rotationFunctionArns: string[] | undefined;
  if (rotationRaw !== undefined) {
    rotationFunctionArns = rotationRaw
      .split(",")
      .map((arn) => arn.trim())
      .filter((arn) => arn !== "");
    const bad = rotationFunctionArns.filter((arn) => !LAMBDA_ARN.test(arn));
    if (rotationFunctionArns.length === 0 || bad.length > 0) {
      problems.push(`rotationFunctionArns: must list Lambda function ARNs (no wildcards): ${bad.join(", ")}`);
    }
  }

  const alarmEmail = text("alarmEmail");
  if (alarmEmail !== undefined && !EMAIL.test(alarmEmail)) {
    problems.push(`alarmEmail: not an e-mail address: "${alarmEmail}"`);
  }

  const wafAclArn = text("wafAclArn");
  if (wafAclArn !== undefined && !WAF_ACL_ARN.test(wafAclArn)) {
    problems.push(
      `wafAclArn: must be a regional WAFv2 web ACL ARN (arn:aws:wafv2:REGION:ACCOUNT:regional/webacl/NAME/ID), got "${wafAclArn}"`,
    );
  }

  const apiRateLimit = integer("apiRateLimit", DEPLOY_DEFAULTS.apiRateLimit, 1, 10_000);
  const apiBurstLimit = integer("apiBurstLimit", DEPLOY_DEFAULTS.apiBurstLimit, 1, 5_000);
  const vendRateLimit = integer("vendRateLimit", DEPLOY_DEFAULTS.vendRateLimit, 1, 10_000);
  const vendBurstLimit = integer("vendBurstLimit", Math.min(vendRateLimit * 2, 5_000), 1, 5_000);
  if (vendRateLimit > apiRateLimit) {
    problems.push(
      `vendRateLimit: ${vendRateLimit} exceeds apiRateLimit ${apiRateLimit}; the stage limit would cap it`,
    );
  }

  const logRetentionDays = integer("logRetentionDays", DEPLOY_DEFAULTS.logRetentionDays, 1, 3653);
  if (!(LOG_RETENTION_DAYS as readonly number[]).includes(logRetentionDays)) {
    problems.push(`logRetentionDays: CloudWatch Logs accepts only ${LOG_RETENTION_DAYS.join(", ")}`);
  }
  const lifecycleConcurrency = integer("lifecycleConcurrency", DEPLOY_DEFAULTS.lifecycleConcurrency, 0, 1000);

  if (problems.length > 0 || issuers === undefined) {
    throw new ConfigError(`invalid jitv deployment context:\n  - ${problems.join("\n  - ")}`);
  }
  return {
    issuersFile,
    issuers,
    stage,
    rolePath,
    ...(allowedRoleArns === undefined ? {} : { allowedRoleArns }),
    ...(targetAccounts === undefined ? {} : { targetAccounts }),
    ...(rotationFunctionArns === undefined ? {} : { rotationFunctionArns }),
    ...(alarmEmail === undefined ? {} : { alarmEmail }),
    apiRateLimit,
    apiBurstLimit,
    vendRateLimit,
    vendBurstLimit,
    ...(wafAclArn === undefined ? {} : { wafAclArn }),
    logRetentionDays,
    lifecycleConcurrency,
  };
}
