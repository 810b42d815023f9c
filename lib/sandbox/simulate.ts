import type { EvaluationResult, RequestAnalysis, SimulationErrors } from "@cloud-copilot/iam-simulate";
import { InvalidRequestError } from "../domain/errors.js";
import { evaluateSessionRequest, parseRoleArn } from "../domain/iam-evaluation.js";
import type { SessionTag } from "../domain/sts.js";
import { REVOCATION_POLICY_NAME } from "../revocation/revocation-store.js";

/** What the sandbox knows about one task's credentials, and the request to evaluate. */
export interface SimulationInput {
  /** The task's role, e.g. `arn:aws:iam::123456789012:role/jitv/reports-reader`. */
  readonly roleArn: string;
  /** The role's identity policies (JSON documents). The sandbox defaults to one allow-all policy. */
  readonly rolePolicies: readonly string[];
  /** The role's inline `jitv-revoked-tasks` policy (JSON), when present. */
  readonly revocationPolicy?: string;
  /** The task's rendered session policy (JSON), exactly as sent to STS. */
  readonly sessionPolicy: string;
  /** The session tags (`jitv:task`, `jitv:agent`, …); each becomes `aws:PrincipalTag/<Key>`. */
  readonly sessionTags: readonly SessionTag[];
  /** The role session name, i.e. the task id. */
  readonly sessionName: string;
  /** The session's source identity (the agent id), when set. */
  readonly sourceIdentity?: string;
  /** RFC 3339: when the session was issued, for `aws:TokenIssueTime` conditions. */
  readonly tokenIssueTime?: string;
  /** One IAM action, e.g. `s3:GetObject`. */
  readonly action: string;
  /** One resource ARN, e.g. `arn:aws:s3:::jitv-demo-reports/q3.csv`; `*` for actions that take no resource. */
  readonly resource: string;
}

/** The answer of {@link simulateTaskRequest}, as the sandbox's simulate route returns it. */
export interface SimulationResult {
  readonly allowed: boolean;
  readonly decision: "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied";
  /** Which policy decided, in words, e.g. `not allowed by the task's session policy`. */
  readonly reason: string;
}

/** Options of {@link simulateTaskRequest}. */
export interface SimulateTaskRequestOptions {
  /** The time of the request, for `aws:CurrentTime` and `aws:EpochTime`. @default new Date() */
  readonly now?: Date;
}

type StatementAnalysis = NonNullable<RequestAnalysis["identityAnalysis"]>["denyStatements"][number];

/** Names the simulator knows the role's own policies by; revocation keeps its IAM name. */
const ROLE_POLICY_NAME_PREFIX = "role-policy-";

/**
 * Evaluates "would this action on this resource be allowed for the credentials of this
 * task, right now?" the way IAM evaluates a request made with an assumed-role session
 * that carries a session policy: the role's identity policies (including the inline
 * `jitv-revoked-tasks` policy) must allow it, the session policy must allow it, and an
 * explicit `Deny` in any of them wins. This is the evaluation behind the sandbox's
 * `POST /v1/sandbox/simulate` (CONTRACT.md section 7).
 *
 * Evaluation is {@link evaluateSessionRequest} (`@cloud-copilot/iam-simulate`, which supports
 * session policies natively), shared with the drift detector; its documentation lists the
 * request context. Resource policies, SCPs and RCPs are not modelled, so a cross-account request
 * is reported implicitly denied.
 *
 * @throws InvalidRequestError when the action is unknown, the resource is not one the
 *   action acts on (or is a wildcard pattern), or the role ARN, session name, issue time or
 *   a policy is malformed; the message names what was wrong.
 *
 * @example
 * const result = await simulateTaskRequest({
 *   roleArn: "arn:aws:iam::123456789012:role/jitv/reports-reader",
 *   rolePolicies: [ALLOW_ALL],
 *   sessionPolicy: task.sessionPolicy,
 *   sessionTags: [{ Key: "jitv:task", Value: task.taskId }],
 *   sessionName: task.taskId,
 *   action: "s3:GetObject",
 *   resource: "arn:aws:s3:::jitv-demo-reports/q3.csv",
 * });
 * // → { allowed: true, decision: "Allowed", reason: "allowed by the role policy and the session policy" }
 */
export async function simulateTaskRequest(
  input: SimulationInput,
  options: SimulateTaskRequestOptions = {},
): Promise<SimulationResult> {
  const role = parseRoleArn(input.roleArn);

  const identityPolicies = input.rolePolicies.map((document, index) => ({
    name: `${ROLE_POLICY_NAME_PREFIX}${index + 1}`,
    policy: parsePolicy(document, describeRolePolicy(index, input.rolePolicies.length)),
  }));
  if (input.revocationPolicy !== undefined) {
    identityPolicies.push({
      name: REVOCATION_POLICY_NAME,
      policy: parsePolicy(input.revocationPolicy, `the role's ${REVOCATION_POLICY_NAME} policy`),
    });
  }

  const response = await evaluateSessionRequest({
    roleArn: input.roleArn,
    identityPolicies,
    sessionPolicy: parsePolicy(input.sessionPolicy, "the task's session policy"),
    sessionTags: input.sessionTags,
    sessionName: input.sessionName,
    ...(input.sourceIdentity === undefined ? {} : { sourceIdentity: input.sourceIdentity }),
    ...(input.tokenIssueTime === undefined ? {} : { tokenIssueTime: input.tokenIssueTime }),
    action: input.action,
    resource: input.resource,
    now: options.now ?? new Date(),
  });

  if (response.resultType === "error") {
    throw new InvalidRequestError(describeErrors(response.errors, input, input.rolePolicies.length));
  }
  if (response.resultType === "wildcard") {
    throw new InvalidRequestError(
      `resource "${input.resource}" is a pattern; name one resource ARN (use "*" only for actions that take no resource)`,
    );
  }

  const analysis = response.result.analysis;
  const decision = response.overallResult;
  return {
    allowed: decision === "Allowed",
    decision,
    reason: explain(decision, analysis, role.accountId, input.rolePolicies.length),
  };
}

function parsePolicy(document: string, what: string): unknown {
  try {
    return JSON.parse(document);
  } catch {
    throw new InvalidRequestError(`${what} is not valid JSON`);
  }
}

function describeRolePolicy(index: number, count: number): string {
  return count === 1 ? "the role policy" : `the role policy #${index + 1}`;
}

/** Turns the simulator's error codes (e.g. `invalid.action`) into a sentence for the caller. */
function describeErrors(errors: SimulationErrors, input: SimulationInput, rolePolicyCount: number): string {
  switch (errors.message) {
    case "invalid.service":
      return `unknown AWS service in action "${input.action}"`;
    case "invalid.action":
      return `unknown action "${input.action}"; name one IAM action such as "s3:GetObject"`;
    case "must.use.wildcard":
      return `${input.action} does not act on a specific resource; use "*" as the resource`;
    case "no.resource.types":
      return `"${input.resource}" is not a resource that ${input.action} acts on`;
    case "multiple.resource.types":
      return `"${input.resource}" matches more than one resource type of ${input.action}; name a more specific ARN`;
    case "policy.errors": {
      const problems: string[] = [];
      if (errors.sessionPolicyErrors !== undefined) {
        problems.push(policyProblem("the task's session policy", errors.sessionPolicyErrors));
      }
      for (const [name, list] of Object.entries(errors.identityPolicyErrors ?? {})) {
        problems.push(policyProblem(policyLabel(name, rolePolicyCount), list));
      }
      return problems.length > 0 ? problems.join("; ") : "a policy is not valid IAM";
    }
    default:
      return `cannot simulate ${input.action} on ${input.resource} (${errors.message})`;
  }
}

function policyProblem(label: string, list: readonly { path: string; message: string }[]): string {
  const [first] = list;
  const more = list.length > 1 ? ` (and ${list.length - 1} more)` : "";
  return first === undefined
    ? `${label} is not valid IAM`
    : `${label} is not valid IAM: ${first.path}: ${first.message}${more}`;
}

/** How a reason names the policy the simulator knows as `name`. */
function policyLabel(name: string, rolePolicyCount: number): string {
  if (name === REVOCATION_POLICY_NAME) {
    return `the role's ${REVOCATION_POLICY_NAME} policy`;
  }
  const index = Number(name.slice(ROLE_POLICY_NAME_PREFIX.length)) - 1;
  return describeRolePolicy(index, rolePolicyCount);
}

/** Names what decided: the denying statement's policy, or the gate(s) that did not allow. */
function explain(
  decision: EvaluationResult,
  analysis: RequestAnalysis,
  roleAccountId: string,
  rolePolicyCount: number,
): string {
  const identity = analysis.identityAnalysis;
  const session = analysis.sessionAnalysis;
  if (decision === "Allowed") {
    return "allowed by the role policy and the session policy";
  }
  if (decision === "ExplicitlyDenied") {
    // The revocation entry is the most useful thing to name when several denies apply.
    const identityDenies = identity?.denyStatements ?? [];
    const revocation = identityDenies.find((s) => s.policyId === REVOCATION_POLICY_NAME);
    if (revocation !== undefined) {
      return `explicitly denied by the role's ${REVOCATION_POLICY_NAME} policy (${revocationCause(revocation)})`;
    }
    const [roleDeny] = identityDenies;
    if (roleDeny !== undefined) {
      return `explicitly denied by ${policyLabel(roleDeny.policyId, rolePolicyCount)} (${statementLabel(roleDeny)})`;
    }
    const [sessionDeny] = session?.denyStatements ?? [];
    if (sessionDeny !== undefined) {
      return `explicitly denied by the task's session policy (${statementLabel(sessionDeny)})`;
    }
    return "explicitly denied";
  }
  const roleAllows = identity?.result === "Allowed";
  const sessionAllows = session?.result === "Allowed";
  if (!roleAllows && !sessionAllows) {
    return "allowed by neither the role policy nor the task's session policy";
  }
  if (!sessionAllows) {
    return "not allowed by the task's session policy";
  }
  if (!roleAllows) {
    return "not allowed by the role policy";
  }
  if (!analysis.sameAccount) {
    return `the resource is not in the role's account ${roleAccountId}; cross-account access also needs the resource's own policy, which the sandbox does not model`;
  }
  const blockedBy = analysis.blockedBy ?? [];
  return blockedBy.length > 0
    ? `implicitly denied (blocked by ${blockedBy.join(", ")})`
    : "implicitly denied";
}

/** Why a revocation statement applies: a per-task entry or an issue-time cutoff. */
function revocationCause(analysis: StatementAnalysis): string {
  const keys = analysis.statement.conditions().map((condition) => condition.conditionKey().toLowerCase());
  if (keys.includes("aws:principaltag/jitv:task")) {
    return "task revoked";
  }
  if (keys.includes("aws:tokenissuetime")) {
    return "sessions issued before the cutoff are revoked";
  }
  return statementLabel(analysis);
}

function statementLabel(analysis: StatementAnalysis): string {
  const sid = analysis.statement.sid();
  return sid === undefined || sid === "" ? `statement ${analysis.statement.index()}` : `statement "${sid}"`;
}
