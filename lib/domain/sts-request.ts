import { createHash } from "node:crypto";
import { ROLE_ARN_PATTERN } from "./accounts.js";
import { InternalError, InvalidRequestError } from "./errors.js";
import { assertPolicyCharacters, assertPolicySize } from "./render.js";
import { type AssumeRoleRequest, type SessionTag, STS_LIMITS } from "./sts.js";
import type { Task } from "./task.js";
import type { TaskTemplate } from "./template.js";

/**
 * What jitv asks STS for (CONTRACT.md section 5), built and checked without the SDK so the
 * sandbox and the deployed broker send byte-for-byte the same request.
 */

/** Session tag keys jitv sets; the revocation deny statement keys on `jitv:task`. */
export const SESSION_TAG_KEYS = {
  task: "jitv:task",
  agent: "jitv:agent",
  template: "jitv:template",
  user: "jitv:user",
  tenant: "jitv:tenant",
} as const;

/** `RoleSessionName` and `SourceIdentity` syntax (AssumeRole API reference). */
const STS_NAME = /^[\w+=,.@-]{2,64}$/;
const STS_NAME_DISALLOWED = /[^\w+=,.@-]/gu;
/** Tag key and value syntax (Tag data type, STS API reference). */
const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

const SOURCE_IDENTITY_MAX_LENGTH = 64;
/**
 * Hex characters of SHA-256 appended to a changed id: 64 bits keep a chosen collision out of
 * reach (32 bits could be brute-forced) while 47 readable characters remain.
 */
const HASH_HEX_LENGTH = 16;
/** The tail every changed id gets; an unchanged id ending like this is hashed too. */
const HASH_SUFFIX = new RegExp(`-[0-9a-f]{${HASH_HEX_LENGTH}}$`);

/**
 * Turns an agent id into a valid `SourceIdentity` (`[\w+=,.@-]{2,64}`, not starting with
 * `aws:`), readable in CloudTrail and distinct for distinct ids, since IAM policies may
 * condition on `aws:SourceIdentity`.
 *
 * An id that already qualifies is returned unchanged. Otherwise other characters become `-`,
 * an id starting with `aws:` (any case) gets an `agent-` prefix, and `-` plus the first 16 hex
 * characters of the SHA-256 of the original id are appended, the readable part cut to keep
 * the total within 64. So `team:a` and `team/a` differ, and neither equals `team-a`. A valid
 * id that itself ends in `-` and 16 lowercase hex characters is hashed as well, so no agent
 * can choose an id equal to another agent's sanitised one. The exact id is in the
 * `jitv:agent` session tag and the task.
 *
 * @example
 * sanitiseSourceIdentity("agent-a"); // → "agent-a"
 * sanitiseSourceIdentity("repo:org/repo:ref:refs/heads/main"); // → "repo-org-repo-ref-refs-heads-main-746a08af312cd7ed"
 * sanitiseSourceIdentity("aws:x"); // → "agent-aws-x-" followed by 16 hex characters
 */
export function sanitiseSourceIdentity(agentId: string): string {
  if (STS_NAME.test(agentId) && !HASH_SUFFIX.test(agentId)) return agentId;
  let readable = agentId.replace(STS_NAME_DISALLOWED, "-");
  if (/^aws:/i.test(agentId)) readable = `agent-${readable}`;
  const hash = createHash("sha256").update(agentId, "utf8").digest("hex").slice(0, HASH_HEX_LENGTH);
  return `${readable.slice(0, SOURCE_IDENTITY_MAX_LENGTH - HASH_HEX_LENGTH - 1)}-${hash}`;
}

/** What the session tags of a task are built from. `user`/`tenant` for delegated tasks only. */
export interface SessionTagInput {
  readonly task: string;
  readonly agent: string;
  readonly template: string;
  readonly user?: string;
  readonly tenant?: string;
}

/**
 * The session tags of a task: `jitv:task`, `jitv:agent`, `jitv:template`, and for delegated
 * tasks `jitv:user` and `jitv:tenant`, checked with {@link assertTagLimits}.
 *
 * @throws InvalidRequestError naming the tag key when a value cannot be a tag value
 * @example
 * buildSessionTags({ task: "tsk_1", agent: "agent-a", template: "reports-read" });
 * // → [{ Key: "jitv:task", Value: "tsk_1" }, { Key: "jitv:agent", Value: "agent-a" }, { Key: "jitv:template", Value: "reports-read" }]
 */
export function buildSessionTags(input: SessionTagInput): SessionTag[] {
  const tags: SessionTag[] = [
    { Key: SESSION_TAG_KEYS.task, Value: input.task },
    { Key: SESSION_TAG_KEYS.agent, Value: input.agent },
    { Key: SESSION_TAG_KEYS.template, Value: input.template },
  ];
  if (input.user !== undefined) tags.push({ Key: SESSION_TAG_KEYS.user, Value: input.user });
  if (input.tenant !== undefined) tags.push({ Key: SESSION_TAG_KEYS.tenant, Value: input.tenant });
  assertTagLimits(tags);
  return tags;
}

/**
 * Refuses session tags STS would refuse: more than 50, a key of 0 or over 128 characters,
 * a value over 256, characters outside `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, an `aws:` key or a key
 * given twice (keys are case-insensitive).
 *
 * @throws InvalidRequestError naming the tag key, never the value
 */
export function assertTagLimits(tags: readonly SessionTag[]): void {
  if (tags.length > STS_LIMITS.maxTags) {
    throw new InvalidRequestError(`${tags.length} session tags; STS allows at most ${STS_LIMITS.maxTags}`);
  }
  const seen = new Set<string>();
  for (const { Key: key, Value: value } of tags) {
    if (key.length === 0 || key.length > STS_LIMITS.maxTagKeyLength || !TAG_TEXT.test(key)) {
      throw new InvalidRequestError("a session tag key is not a valid STS tag key");
    }
    if (/^aws:/i.test(key))
      throw new InvalidRequestError(`session tag key "${key}" uses the reserved aws: prefix`);
    const folded = key.toLowerCase();
    if (seen.has(folded)) throw new InvalidRequestError(`session tag "${key}" is given twice`);
    seen.add(folded);
    if (value.length > STS_LIMITS.maxTagValueLength) {
      throw new InvalidRequestError(
        `session tag "${key}" value is longer than ${STS_LIMITS.maxTagValueLength} characters`,
      );
    }
    if (!TAG_TEXT.test(value)) {
      throw new InvalidRequestError(
        `session tag "${key}" value holds characters STS does not accept in tags`,
      );
    }
  }
}

/**
 * The longest single credential when a template sets no `ttl.credentialMaxSeconds` (CONTRACT.md
 * section 4): a task longer than this refreshes, which keeps every revocation entry short-lived
 * (it is pruned once the task's last credential expired) and so every role's deny list short.
 */
export const DEFAULT_CREDENTIAL_MAX_SECONDS = 900;

/**
 * The `DurationSeconds` of one credential: the task's remaining life (rounded up), the
 * template's `ttl.credentialMaxSeconds` (default {@link DEFAULT_CREDENTIAL_MAX_SECONDS}) and the
 * one-hour role-chaining cap, whichever is least — but never under 900 seconds.
 *
 * STS cannot issue sessions shorter than 900 seconds, so a credential issued in a task's last
 * 15 minutes outlives the task. The tail is covered by the task deadline's revocation: the
 * task id joins the target role's `Deny *` on `aws:PrincipalTag/jitv:task`, which stops
 * every session of the task whatever its `Expiration`. Callers refuse tasks that are no
 * longer active before asking.
 *
 * @example
 * sessionDurationSeconds({ now, expiresAt: new Date(now.getTime() + 300_000) }); // → 900
 * sessionDurationSeconds({ now, expiresAt: new Date(now.getTime() + 2_000_000) }); // → 900
 * sessionDurationSeconds({ now, expiresAt: new Date(now.getTime() + 2_000_000), credentialMaxSeconds: 3600 }); // → 2000
 */
export function sessionDurationSeconds(input: {
  readonly now: Date;
  readonly expiresAt: Date;
  readonly credentialMaxSeconds?: number;
}): number {
  const remaining = Math.ceil((input.expiresAt.getTime() - input.now.getTime()) / 1000);
  const limit = Math.min(
    remaining,
    input.credentialMaxSeconds ?? DEFAULT_CREDENTIAL_MAX_SECONDS,
    STS_LIMITS.maxDurationSeconds,
  );
  // NaN (an invalid date) must not slip through Math.max as NaN.
  if (Number.isNaN(limit)) throw new InternalError("task times are not valid dates");
  return Math.max(STS_LIMITS.minDurationSeconds, limit);
}

/**
 * The AssumeRole request for one credential of a task: the task's role and stored session
 * policy, `RoleSessionName` = task id, `SourceIdentity` = the sanitised agent id, the task's
 * session tags and {@link sessionDurationSeconds}; checked with {@link assertStsLimits}.
 *
 * @throws InvalidRequestError when the request would break an STS limit
 * @example
 * const request = buildAssumeRoleRequest({ task, template, now: new Date() });
 * await broker.assumeRole(request);
 */
export function buildAssumeRoleRequest(input: {
  readonly task: Task;
  readonly template: TaskTemplate;
  readonly now: Date;
}): AssumeRoleRequest {
  const { task, template, now } = input;
  if (template.name !== task.template) throw new InternalError("template does not belong to the task");
  const request: AssumeRoleRequest = {
    roleArn: task.roleArn,
    roleSessionName: task.taskId,
    sourceIdentity: sanitiseSourceIdentity(task.agent.id),
    policy: task.sessionPolicy,
    tags: buildSessionTags({
      task: task.taskId,
      agent: task.agent.id,
      template: task.template,
      ...(task.onBehalfOf === undefined
        ? {}
        : { user: task.onBehalfOf.user, tenant: task.onBehalfOf.tenant }),
    }),
    durationSeconds: sessionDurationSeconds({
      now,
      expiresAt: new Date(task.expiresAt),
      ...(template.ttl.credentialMaxSeconds === undefined
        ? {}
        : { credentialMaxSeconds: template.ttl.credentialMaxSeconds }),
    }),
  };
  assertStsLimits(request);
  return request;
}

/**
 * Re-checks a request against STS's documented limits just before it is sent, so a request
 * STS would refuse is refused by jitv without a call: role ARN syntax, session name and
 * source identity `[\w+=,.@-]{2,64}`, policy characters and size, tags, duration 900..3600.
 *
 * @throws InvalidRequestError naming the field
 */
export function assertStsLimits(request: AssumeRoleRequest): void {
  if (!ROLE_ARN_PATTERN.test(request.roleArn))
    throw new InvalidRequestError("roleArn is not an IAM role ARN");
  if (!STS_NAME.test(request.roleSessionName)) {
    throw new InvalidRequestError("role session name must match [\\w+=,.@-]{2,64}");
  }
  if (!STS_NAME.test(request.sourceIdentity) || /^aws:/i.test(request.sourceIdentity)) {
    throw new InvalidRequestError("source identity must match [\\w+=,.@-]{2,64} and not start with aws:");
  }
  if (request.policy.length === 0) throw new InvalidRequestError("session policy is empty");
  assertPolicyCharacters(request.policy);
  assertPolicySize(request.policy);
  assertTagLimits(request.tags);
  const duration = request.durationSeconds;
  if (
    !Number.isInteger(duration) ||
    duration < STS_LIMITS.minDurationSeconds ||
    duration > STS_LIMITS.maxDurationSeconds
  ) {
    throw new InvalidRequestError(
      `credential duration must be ${STS_LIMITS.minDurationSeconds}..${STS_LIMITS.maxDurationSeconds} seconds`,
    );
  }
}

/**
 * The `AssumeRole` input of a request, exactly the fields jitv sends (no `TransitiveTagKeys`):
 * what the broker sends, and what the sandbox shows it would have sent.
 */
export function assumeRoleInput(request: AssumeRoleRequest) {
  return {
    RoleArn: request.roleArn,
    RoleSessionName: request.roleSessionName,
    SourceIdentity: request.sourceIdentity,
    Policy: request.policy,
    Tags: request.tags.map((tag) => ({ Key: tag.Key, Value: tag.Value })),
    DurationSeconds: request.durationSeconds,
  };
}
