import { cidrList, isIpAddress } from "../domain/cidr.js";
import { evaluateSessionRequest } from "../domain/iam-evaluation.js";
import { buildSessionTags, sanitiseSourceIdentity } from "../domain/sts-request.js";
import type { Task } from "../domain/task.js";
import { type DriftSettings, driftSchema, type TaskTemplate } from "../domain/template.js";
import { iamActionOf, type TaskCall } from "./cloudtrail.js";

/**
 * The drift rules (CONTRACT.md section 9), pure: given a task and one call its session made,
 * what is off-purpose about it. The detector (`detector.ts`) supplies the task, the template and
 * the AccessDenied history, and acts on the findings.
 */

/** Which rule a finding comes from. */
export type DriftRule = "off-policy-action" | "access-denied-burst" | "source-ip";

/** Something off-purpose in a task's calls, with its evidence. */
export interface DriftFinding {
  readonly rule: DriftRule;
  /** What happened, for the revocation reason and the audit event (no secrets: actions, ARNs, IPs). */
  readonly detail: string;
  /** What the template says to do about it. */
  readonly response: "revoke" | "audit";
  /** CloudTrail `eventID`s of the calls that make up the finding. */
  readonly eventIds: readonly string[];
  /** IAM actions of those calls. */
  readonly actions: readonly string[];
}

/** A template's drift settings with every default applied (also for a template without `drift`). */
export function driftSettingsOf(template: Pick<TaskTemplate, "drift"> | undefined): DriftSettings {
  return template?.drift ?? driftSchema.parse({});
}

/**
 * True when the call was made by the task's own session: the record's role is the task's role
 * and its source identity, when CloudTrail shows one, is the one jitv set for the task's agent.
 */
export function isTaskSession(call: TaskCall, task: Pick<Task, "roleArn" | "agent">): boolean {
  return (
    call.roleArn === task.roleArn &&
    (call.sourceIdentity === undefined || call.sourceIdentity === sanitiseSourceIdentity(task.agent.id))
  );
}

/** The identity policy the off-policy rule assumes for the role: only the session policy decides. */
const ROLE_ALLOWS_ALL = {
  name: "role",
  policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] },
};

/** Simulator answers meaning "this resource does not fit this action": try the next one. */
const NOT_THIS_RESOURCE = new Set(["no.resource.types", "must.use.wildcard", "multiple.resource.types"]);

/**
 * Rule (a): the call's action is outside what the task's session policy allows. Evaluated with
 * the IAM policy engine of the sandbox's `simulate` ({@link evaluateSessionRequest}), with the
 * task's session tags, source identity, issue time and the call's source IP in the context, and
 * the role taken to allow everything (the session policy is what the task was granted).
 *
 * Resources: the call is on-policy when the action is allowed on any resource the record names
 * that the action acts on (a copy names its source and destination); a record that names none
 * (most management events) is judged by whether the policy allows the action on any resource.
 * An action the engine does not know is off-policy: a session policy names known actions, and a
 * security check fails closed.
 */
export async function offPolicyFinding(
  call: TaskCall,
  task: Task,
  settings: DriftSettings,
): Promise<DriftFinding | undefined> {
  const action = iamActionOf(call);
  const finding = (detail: string): DriftFinding => ({
    rule: "off-policy-action",
    detail,
    response: settings.offPolicyActions,
    eventIds: [call.eventId],
    actions: [action],
  });
  const sessionPolicy = JSON.parse(task.sessionPolicy) as unknown;
  const sessionTags = buildSessionTags({
    task: task.taskId,
    agent: task.agent.id,
    template: task.template,
    ...(task.onBehalfOf === undefined ? {} : { user: task.onBehalfOf.user, tenant: task.onBehalfOf.tenant }),
  });
  const evaluate = (resource: string) =>
    evaluateSessionRequest({
      roleArn: task.roleArn,
      identityPolicies: [ROLE_ALLOWS_ALL],
      sessionPolicy,
      sessionTags,
      sessionName: task.taskId,
      sourceIdentity: sanitiseSourceIdentity(task.agent.id),
      tokenIssueTime: task.createdAt,
      ...(call.sourceIp !== undefined && isIpAddress(call.sourceIp) ? { sourceIp: call.sourceIp } : {}),
      action,
      resource,
      now: new Date(call.eventTime),
    });

  let evaluated = false;
  for (const resource of call.resources) {
    const result = await evaluate(resource);
    if (result.resultType === "error") {
      if (NOT_THIS_RESOURCE.has(result.errors.message)) continue;
      return finding(`${action} cannot be evaluated (${result.errors.message})`);
    }
    if (result.overallResult === "Allowed") return undefined;
    evaluated = true;
  }
  if (evaluated) {
    return finding(`${action} on ${call.resources.join(", ")} is not allowed by the task's session policy`);
  }
  const result = await evaluate("*");
  if (result.resultType === "error") {
    return finding(`${action} is unknown to the policy engine (${result.errors.message})`);
  }
  return result.overallResult === "Allowed"
    ? undefined
    : finding(`${action} is not allowed by the task's session policy`);
}

/**
 * Rule (c): with `sourceIps` set, a call from an IP address outside every range. A call an AWS
 * service made on the session's behalf (`sourceIPAddress` is the service's name) is not judged.
 * Always revokes: listing addresses is opting in.
 */
export function sourceIpFinding(call: TaskCall, settings: DriftSettings): DriftFinding | undefined {
  if (settings.sourceIps === undefined || call.sourceIp === undefined) return undefined;
  if (!isIpAddress(call.sourceIp) || cidrList(settings.sourceIps)(call.sourceIp)) return undefined;
  return {
    rule: "source-ip",
    detail: `${iamActionOf(call)} from ${call.sourceIp}, outside the template's sourceIps`,
    response: "revoke",
    eventIds: [call.eventId],
    actions: [iamActionOf(call)],
  };
}

/** One AccessDenied call of a task, as the burst rule counts it. */
export interface DeniedCall {
  readonly eventId: string;
  /** ISO time (`Date.toISOString()`). */
  readonly eventTime: string;
  readonly action: string;
}

/**
 * Rule (b): `count` AccessDenied calls within `windowSeconds`, in event time. `denied` holds the
 * task's AccessDenied calls around `call`'s time (its own included), in any order; the burst is
 * found whatever order CloudTrail delivered them in: any window of `windowSeconds` that contains
 * `call` and `count` calls is a burst.
 */
export function burstFinding(
  call: DeniedCall,
  denied: readonly DeniedCall[],
  settings: DriftSettings,
): DriftFinding | undefined {
  const { count, windowSeconds } = settings.accessDeniedBurst;
  const at = Date.parse(call.eventTime);
  const span = windowSeconds * 1000;
  const sorted = [...denied].sort((a, b) => Date.parse(a.eventTime) - Date.parse(b.eventTime));
  for (let start = 0; start < sorted.length; start++) {
    const from = Date.parse(sorted[start]?.eventTime ?? "");
    if (from > at || at - from > span) continue;
    const burst = sorted.slice(start).filter((d) => Date.parse(d.eventTime) - from <= span);
    if (burst.length >= count) {
      const actions = [...new Set(burst.map((d) => d.action))];
      return {
        rule: "access-denied-burst",
        detail: `${burst.length} AccessDenied errors within ${windowSeconds} s (${actions.join(", ")})`,
        response: "revoke",
        eventIds: burst.map((d) => d.eventId),
        actions,
      };
    }
  }
  return undefined;
}
