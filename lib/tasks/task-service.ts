import type { AuditLog } from "../audit/audit-log.js";
import type { Authorizer } from "../authz/authorizer.js";
import type { CredentialBroker } from "../credentials/broker.js";
import {
  ConflictError,
  ForbiddenError,
  InvalidRequestError,
  JitvError,
  NotFoundError,
  UpstreamUnavailableError,
} from "../domain/errors.js";
import type { IssuerKind, VerifiedIdentity } from "../domain/identity.js";
import { isTaskId, newTaskId } from "../domain/ids.js";
import { assertSafeIdentityValue, renderSessionPolicy, validateParameters } from "../domain/render.js";
import type { IssuedCredentials } from "../domain/sts.js";
import { buildAssumeRoleRequest, buildSessionTags } from "../domain/sts-request.js";
import { effectiveStatus, type Task } from "../domain/task.js";
import type { TaskTemplate } from "../domain/template.js";
import type { ReplayCache } from "../identity/replay-cache.js";
import type { LifecycleStarter, TaskTokenSender } from "./lifecycle.js";
import type { TaskRepository, TemplateStore } from "./repository.js";

/** What the service needs from token verification (implemented by `TokenVerifier`). */
export interface Verifier {
  verify(token: string, options?: { kind?: IssuerKind }): Promise<VerifiedIdentity>;
}

/** Who counts as an admin: tokens from `issuer` whose `claim` holds one of `values`. */
export interface RoleRule {
  readonly issuer: string;
  readonly claim: string;
  readonly values: readonly string[];
}

export interface TaskServiceDeps {
  readonly verifier: Verifier;
  readonly templates: TemplateStore;
  readonly tasks: TaskRepository;
  readonly replay: ReplayCache;
  readonly authorizer: Authorizer;
  readonly broker: CredentialBroker;
  readonly audit: AuditLog;
  readonly lifecycle: LifecycleStarter;
  readonly tokens: TaskTokenSender;
  readonly admins?: RoleRule;
  readonly now?: () => Date;
  readonly newTaskId?: () => string;
}

/** The body of `POST /v1/tasks`, already schema-checked at the HTTP edge. */
export interface VendInput {
  readonly template: string;
  readonly parameters?: Record<string, unknown>;
  readonly purpose?: string;
  readonly ttlSeconds?: number;
  readonly subjectToken?: string;
}

export interface VendResult {
  readonly status: 201 | 202;
  readonly task: Task;
  readonly credentials?: IssuedCredentials;
}

/**
 * The vend path and task reads (CONTRACT.md sections 3–6), shared by the Lambdas and the
 * sandbox. Order of a vend: authenticate → validate → authorize → render → consume the
 * token's `jti` → durable task record + TTL lease (one transaction) → STS. Nothing is
 * returned unless every step succeeded; a failure after the record exists marks it `failed`.
 */
export class TaskService {
  readonly #d: TaskServiceDeps;
  readonly #now: () => Date;
  readonly #newTaskId: () => string;

  constructor(deps: TaskServiceDeps) {
    this.#d = deps;
    this.#now = deps.now ?? (() => new Date());
    this.#newTaskId = deps.newTaskId ?? newTaskId;
  }

  /** Verifies an agent token (401 on any failure). */
  authenticateAgent(token: string): Promise<VerifiedIdentity> {
    return this.#d.verifier.verify(token, { kind: "agent" });
  }

  async vend(
    agent: VerifiedIdentity,
    input: VendInput,
    options: { idempotencyKey?: string; requestId?: string } = {},
  ): Promise<VendResult> {
    const { audit } = this.#d;
    const template = await this.#d.templates.get(input.template);
    if (!template) throw new NotFoundError("unknown template");
    const base = { requestId: options.requestId, template: template.name, agent: agentRef(agent) };
    const deny = (err: JitvError, extra: Record<string, unknown> = {}): never => {
      audit.record({ event: "vend.denied", ...base, reason: err.message, ...extra });
      throw err;
    };

    if (agent.zone !== template.zone) {
      deny(new ForbiddenError(`a ${agent.zone}-zone agent cannot use a ${template.zone}-zone template`));
    }
    const subject = await this.#verifySubject(template, input.subjectToken).catch((err: JitvError) =>
      deny(err),
    );
    const who = { user: subject?.id, tenant: subject?.tenant };

    const ttlSeconds = input.ttlSeconds ?? template.ttl.defaultSeconds;
    if (ttlSeconds < 900 || ttlSeconds > template.ttl.maxSeconds) {
      deny(new InvalidRequestError(`ttlSeconds must be between 900 and ${template.ttl.maxSeconds}`), who);
    }
    let parameters: Record<string, string> = {};
    try {
      parameters = validateParameters(template, input.parameters);
    } catch (err) {
      deny(err as JitvError, who);
    }

    const decision = await this.#d.authorizer.authorizeVend({
      agent,
      template,
      ...(subject ? { subject } : {}),
      ...(input.purpose === undefined ? {} : { purpose: input.purpose }),
      ttlSeconds,
      parameters,
    });
    if (!decision.allowed) deny(new ForbiddenError(decision.reason), { ...who, policies: decision.policies });
    if (template.approval.required) {
      deny(
        new ForbiddenError("this template requires approval, which this deployment does not offer yet"),
        who,
      );
    }

    const taskId = this.#newTaskId();
    let sessionPolicy = "";
    try {
      sessionPolicy = renderSessionPolicy(template, {
        task: taskId,
        agent: agent.id,
        ...(subject ? { user: subject.id, tenant: subject.tenant } : {}),
        params: parameters,
      });
      // Session tags carry the claim values verbatim: refuse what STS would refuse, before anything is stored.
      buildSessionTags({ task: taskId, agent: agent.id, template: template.name, ...who });
    } catch (err) {
      deny(err as JitvError, who);
    }
    audit.record({ event: "vend.allowed", ...base, ...who, taskId, policies: decision.policies });

    if (agent.jti !== undefined) await this.#d.replay.consume(agent.issuer, agent.jti, agent.expiresAt);

    const now = this.#now();
    const task: Task = {
      taskId,
      status: "active",
      template: template.name,
      zone: template.zone,
      roleArn: template.roleArn,
      agent: agentRef(agent),
      ...(subject?.tenant === undefined
        ? {}
        : { onBehalfOf: { issuer: subject.issuer, user: subject.id, tenant: subject.tenant } }),
      ...(input.purpose === undefined ? {} : { purpose: input.purpose }),
      parameters,
      sessionPolicy,
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + ttlSeconds * 1000).toISOString(),
      ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
      issuedCount: 0,
    };
    const created = await this.#d.tasks.create(task);
    if (!created.created) return this.#replayIdempotent(created.task, task, template, options.requestId);

    // The revocation is scheduled (lifecycle execution + TTL lease) before any credential exists.
    try {
      await this.#d.lifecycle.start(created.task);
    } catch (cause) {
      const err = new UpstreamUnavailableError("could not schedule the task's lifecycle", { cause });
      await this.#d.tasks.markFailed(taskId, err.message).catch(() => undefined);
      audit.record({ event: "task.failed", ...base, ...who, taskId, reason: err.message });
      throw err;
    }

    const credentials = await this.#issue(created.task, template, {
      requestId: options.requestId,
      fresh: true,
    });
    return { status: 201, task: created.task, credentials };
  }

  /** `GET /v1/tasks/{id}`: the owner agent or an admin; anyone else gets 404. */
  async getTask(caller: VerifiedIdentity, taskId: string): Promise<Task> {
    const task = isTaskId(taskId) ? await this.#d.tasks.get(taskId) : undefined;
    if (!task || !(isOwner(caller, task) || this.isAdmin(caller))) throw new NotFoundError("unknown task");
    return { ...task, status: effectiveStatus(task, this.#now()) };
  }

  /** `POST /v1/tasks/{id}/credentials`: fresh credentials for the owner's `active` task. */
  async refresh(caller: VerifiedIdentity, taskId: string, requestId?: string): Promise<VendResult> {
    const task = await this.#owned(caller, taskId);
    const status = effectiveStatus(task, this.#now());
    if (status !== "active") throw new ConflictError(`the task is ${status}`);
    const template = await this.#d.templates.get(task.template);
    if (!template) throw new ConflictError("the task's template no longer exists");
    const credentials = await this.#issue(task, template, { requestId, fresh: false });
    return { status: 201, task, credentials };
  }

  /** `POST /v1/tasks/{id}/complete`: the owner is done; revocation and rotation follow at once. */
  async complete(caller: VerifiedIdentity, taskId: string, requestId?: string): Promise<Task> {
    const task = await this.#owned(caller, taskId);
    return this.#end(task, "completed", undefined, requestId);
  }

  /** `POST /v1/tasks/{id}/revoke`: an admin ends a task with a reason. */
  async revoke(caller: VerifiedIdentity, taskId: string, reason: string, requestId?: string): Promise<Task> {
    if (!this.isAdmin(caller)) throw new ForbiddenError("only admins may revoke tasks");
    const task = isTaskId(taskId) ? await this.#d.tasks.get(taskId) : undefined;
    if (!task) throw new NotFoundError("unknown task");
    return this.#end(task, "revoked", reason, requestId, { revokedBy: caller.id });
  }

  /** Verifies any token (agent or user) for read access. */
  authenticateAny(token: string): Promise<VerifiedIdentity> {
    return this.#d.verifier.verify(token);
  }

  isAdmin(identity: VerifiedIdentity): boolean {
    return matchesRole(identity, this.#d.admins);
  }

  async #owned(caller: VerifiedIdentity, taskId: string): Promise<Task> {
    const task = isTaskId(taskId) ? await this.#d.tasks.get(taskId) : undefined;
    if (!task || !isOwner(caller, task)) throw new NotFoundError("unknown task");
    return task;
  }

  async #end(
    task: Task,
    outcome: "completed" | "revoked",
    reason: string | undefined,
    requestId: string | undefined,
    extra: Record<string, unknown> = {},
  ): Promise<Task> {
    const status = effectiveStatus(task, this.#now());
    const from = outcome === "revoked" ? (["active", "pending_approval"] as const) : (["active"] as const);
    const ended =
      (from as readonly string[]).includes(status) &&
      (await this.#d.tasks.transition(task.taskId, from, outcome, reason));
    if (!ended)
      throw new ConflictError(status === "active" ? "the task is no longer active" : `the task is ${status}`);
    this.#d.audit.record({
      event: outcome === "completed" ? "task.completed" : "task.revoked",
      requestId,
      taskId: ended.taskId,
      template: ended.template,
      agent: ended.agent,
      user: ended.onBehalfOf?.user,
      tenant: ended.onBehalfOf?.tenant,
      ...(reason === undefined ? {} : { reason }),
      ...extra,
    });
    // Without a token yet, the execution's registration sees the ended task and moves on itself.
    if (ended.taskToken) {
      await this.#d.tokens.sendSuccess(ended.taskToken, { outcome }).catch(() => {
        // The task has ended either way: revocation then follows at the deadline, or by the TTL backstop.
        this.#d.audit.record({ event: "lifecycle.signal_failed", requestId, taskId: ended.taskId });
      });
    }
    return ended;
  }

  async #verifySubject(template: TaskTemplate, subjectToken: string | undefined) {
    if (template.zone === "workforce") {
      if (subjectToken !== undefined) {
        throw new InvalidRequestError("subjectToken is only accepted for customer-zone templates");
      }
      return undefined;
    }
    if (subjectToken === undefined)
      throw new InvalidRequestError("subjectToken is required for this template");
    const subject = await this.#d.verifier.verify(subjectToken, { kind: "user" });
    if (subject.zone !== template.zone)
      throw new ForbiddenError("the subject token is not from a customer-zone issuer");
    if (subject.tenant === undefined) throw new ForbiddenError("the subject token has no tenant claim");
    assertSafeIdentityValue("tenant", subject.tenant);
    return subject;
  }

  async #replayIdempotent(existing: Task, requested: Task, template: TaskTemplate, requestId?: string) {
    if (existing.template !== requested.template) {
      throw new ConflictError("Idempotency-Key was already used for a different template");
    }
    const status = effectiveStatus(existing, this.#now());
    if (status === "pending_approval") return { status: 202 as const, task: existing };
    if (status !== "active") throw new ConflictError(`the task for this Idempotency-Key is ${status}`);
    const credentials = await this.#issue(existing, template, { requestId, fresh: false });
    return { status: 201 as const, task: existing, credentials };
  }

  async #issue(
    task: Task,
    template: TaskTemplate,
    options: { requestId?: string | undefined; fresh: boolean },
  ) {
    const { audit, tasks, broker } = this.#d;
    const base = {
      requestId: options.requestId,
      taskId: task.taskId,
      template: task.template,
      agent: task.agent,
      user: task.onBehalfOf?.user,
      tenant: task.onBehalfOf?.tenant,
    };
    try {
      const request = buildAssumeRoleRequest({ task, template, now: this.#now() });
      const issued = await broker.assumeRole(request);
      await tasks.recordIssue(task.taskId, issued.Expiration);
      const expiration =
        Date.parse(issued.Expiration) > Date.parse(task.expiresAt) ? task.expiresAt : issued.Expiration;
      audit.record({ event: "credentials.issued", ...base, durationSeconds: request.durationSeconds });
      return { ...issued, Expiration: new Date(expiration).toISOString() };
    } catch (cause) {
      const err =
        cause instanceof JitvError
          ? cause
          : new UpstreamUnavailableError("could not issue credentials", { cause });
      if (options.fresh) {
        await tasks.markFailed(task.taskId, err.message).catch(() => undefined);
        audit.record({ event: "task.failed", ...base, reason: err.message });
      }
      throw err;
    }
  }
}

function agentRef(agent: VerifiedIdentity) {
  return { issuer: agent.issuer, id: agent.id };
}

function isOwner(caller: VerifiedIdentity, task: Task): boolean {
  return caller.kind === "agent" && caller.issuer === task.agent.issuer && caller.id === task.agent.id;
}

/** True when the identity's token comes from `rule.issuer` and its `rule.claim` holds one of `rule.values`. */
export function matchesRole(identity: VerifiedIdentity, rule: RoleRule | undefined): boolean {
  if (!rule || identity.issuer !== rule.issuer) return false;
  const claim = identity.claims[rule.claim];
  const values = Array.isArray(claim) ? claim : [claim];
  return values.some((v) => typeof v === "string" && rule.values.includes(v));
}
