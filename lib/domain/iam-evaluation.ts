import { type RunSimulationResults, runSimulation, type Simulation } from "@cloud-copilot/iam-simulate";
import { InvalidRequestError } from "./errors.js";
import type { SessionTag } from "./sts.js";

/**
 * IAM's evaluation of one request made with a jitv session (an assumed-role session carrying a
 * session policy and session tags), done by `@cloud-copilot/iam-simulate`. Shared by the
 * sandbox's `simulate` route and the drift detector, so both judge a request the same way.
 */

/** An identity policy of the role, by the name the simulator reports it under. */
export interface NamedPolicy {
  readonly name: string;
  /** The parsed policy document. */
  readonly policy: unknown;
}

/** One request of one task's session. */
export interface SessionRequest {
  /** The task's role, e.g. `arn:aws:iam::123456789012:role/jitv/reports-reader`. */
  readonly roleArn: string;
  /** The role's identity policies (the revocation deny list among them, when present). */
  readonly identityPolicies: readonly NamedPolicy[];
  /** The session policy, parsed. */
  readonly sessionPolicy: unknown;
  /** The session tags; each becomes `aws:PrincipalTag/<Key>`. */
  readonly sessionTags: readonly SessionTag[];
  /** The role session name, i.e. the task id. */
  readonly sessionName: string;
  /** The session's source identity (the sanitised agent id), when set. */
  readonly sourceIdentity?: string;
  /** RFC 3339: when the session was issued, for `aws:TokenIssueTime` conditions. */
  readonly tokenIssueTime?: string;
  /** The caller's IP address, for `aws:SourceIp` conditions. */
  readonly sourceIp?: string;
  /** One IAM action, e.g. `s3:GetObject`. */
  readonly action: string;
  /** One resource ARN, or `*` (every resource the policies name is then tried). */
  readonly resource: string;
  /** The time of the request, for `aws:CurrentTime` and `aws:EpochTime`. */
  readonly now: Date;
}

/** A role ARN's parts. */
export interface ParsedRoleArn {
  readonly partition: string;
  readonly accountId: string;
  /** The role's name, without its path. */
  readonly name: string;
}

const ROLE_ARN =
  /^arn:(aws|aws-cn|aws-us-gov|aws-iso(?:-[a-z])?):iam::(\d{12}):role\/(?:[\u0021-\u007e]+\/)?([\w+=,.@-]{1,64})$/;
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/i;

/**
 * Runs IAM's evaluation of `request`: the identity policies must allow it, the session policy
 * must allow it, and an explicit `Deny` in any of them wins. The principal is
 * `arn:<partition>:sts::<account>:assumed-role/<roleName>/<sessionName>`; the request context
 * holds `aws:PrincipalTag/<Key>` per session tag, `aws:PrincipalArn` (the role ARN),
 * `aws:PrincipalAccount`, `aws:PrincipalType`, `aws:SourceIdentity`, `aws:TokenIssueTime` and
 * `aws:SourceIp` when known, `aws:CurrentTime`, `aws:EpochTime`, and `aws:SecureTransport` (AWS
 * SDKs and the CLI always use TLS), so policy variables such as `${aws:PrincipalTag/jitv:tenant}`
 * resolve. A resource ARN carrying an account id is evaluated in that account; S3 ARNs (no
 * account) in the role's. Resource policies, SCPs and RCPs are not modelled.
 *
 * @returns the simulator's result: `error` (unknown action, a resource the action does not act
 *   on, an invalid policy), `single`, or `wildcard` (a `*` or pattern resource)
 * @throws InvalidRequestError when the role ARN, session name or issue time is malformed, or the
 *   simulator fails
 */
export async function evaluateSessionRequest(request: SessionRequest): Promise<RunSimulationResults> {
  const role = parseRoleArn(request.roleArn);
  if (!SESSION_NAME.test(request.sessionName)) {
    throw new InvalidRequestError(`session name "${request.sessionName}" is not a valid role session name`);
  }
  const simulation: Simulation = {
    request: {
      principal: `arn:${role.partition}:sts::${role.accountId}:assumed-role/${role.name}/${request.sessionName}`,
      action: request.action,
      resource: {
        resource: request.resource,
        accountId: resourceAccount(request.resource) ?? role.accountId,
      },
      contextVariables: requestContext(request, role.accountId),
    },
    identityPolicies: [...request.identityPolicies],
    sessionPolicy: request.sessionPolicy,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  };
  try {
    return await runSimulation(simulation, { simulationMode: "Strict" });
  } catch (error) {
    const detail = error instanceof Error ? `: ${error.message}` : "";
    throw new InvalidRequestError(`cannot simulate ${request.action} on ${request.resource}${detail}`, {
      cause: error,
    });
  }
}

/**
 * Splits a role ARN (with or without a path).
 * @throws InvalidRequestError when it is not an IAM role ARN
 */
export function parseRoleArn(roleArn: string): ParsedRoleArn {
  const [, partition, accountId, name] = ROLE_ARN.exec(roleArn) ?? [];
  if (partition === undefined || accountId === undefined || name === undefined) {
    throw new InvalidRequestError(`"${roleArn}" is not an IAM role ARN`);
  }
  return { partition, accountId, name };
}

/** The account id in a resource ARN's fifth field, if it has one (S3 ARNs do not). */
function resourceAccount(resource: string): string | undefined {
  const account = resource.split(":")[4];
  return account !== undefined && /^\d{12}$/.test(account) ? account : undefined;
}

function requestContext(request: SessionRequest, accountId: string): Record<string, string> {
  const { now } = request;
  const context: Record<string, string> = {
    "aws:PrincipalArn": request.roleArn,
    "aws:PrincipalAccount": accountId,
    "aws:PrincipalType": "AssumedRole",
    "aws:SecureTransport": "true",
    "aws:CurrentTime": now.toISOString(),
    "aws:EpochTime": String(Math.floor(now.getTime() / 1000)),
  };
  for (const tag of request.sessionTags) {
    context[`aws:PrincipalTag/${tag.Key}`] = tag.Value;
  }
  if (request.sourceIdentity !== undefined) {
    context["aws:SourceIdentity"] = request.sourceIdentity;
  }
  if (request.sourceIp !== undefined) {
    context["aws:SourceIp"] = request.sourceIp;
  }
  if (request.tokenIssueTime !== undefined) {
    // The simulator silently ignores a date it cannot read, which would skip a revocation cutoff.
    const issued = RFC3339.test(request.tokenIssueTime) ? new Date(request.tokenIssueTime) : undefined;
    if (issued === undefined || Number.isNaN(issued.getTime())) {
      throw new InvalidRequestError(`token issue time "${request.tokenIssueTime}" is not an RFC 3339 time`);
    }
    context["aws:TokenIssueTime"] = issued.toISOString();
  }
  return context;
}
