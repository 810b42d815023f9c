import { type AuditLog, taskAuditFields } from "../audit/audit-log.js";
import type { Authorizer } from "../authz/authorizer.js";
import type { StaffRoles } from "../authz/roles.js";
import type { CredentialBroker } from "../credentials/broker.js";
import { assertTargetAccountForVend, type TargetAccounts } from "../domain/accounts.js";
import {
  ConflictError,
  ForbiddenError,
  InvalidRequestError,
  JitvError,
  NotFoundError,
  UpstreamUnavailableError,
} from "../domain/errors.js";
import type { IssuerKind, VerifiedIdentity, Zone } from "../domain/identity.js";
import { isTaskId, newTaskId } from "../domain/ids.js";
import { assertSafeIdentityValue, renderSessionPolicy, validateParameters } from "../domain/render.js";
import type { AssumeRoleRequest, IssuedCredentials } from "../domain/sts.js";
import { buildAssumeRoleRequest, buildSessionTags } from "../domain/sts-request.js";
import { type AgentRef, effectiveStatus, type Task } from "../domain/task.js";
import type { TaskTemplate } from "../domain/template.js";
import type { AgentRegistry, InventoryScope } from "../tasks/inventory.js";
import { type LifecycleStarter, signalTaskEnded, type TaskTokenSender } from "../tasks/lifecycle.js";
import type { RateLimiter } from "../tasks/limits.js";
import type { ApprovalNotifier } from "../tasks/notifier.js";
import { ReplayedTokenError, type SingleUseToken, type TaskRepository } from "../tasks/repository.js";
import type { TemplateStore } from "../tasks/template-store.js";
import type { AccessControl } from "./access.js";

/** What the service needs from token verification (implemented by `TokenVerifier`). */
export interface Verifier {
  verify(
    token: string,
    options?: { kind?: IssuerKind; use?: "bearer" | "subject" },
  ): Promise<VerifiedIdentity>;
}

export interface TaskServiceDeps {
  readonly verifier: Verifier;
  readonly templates: TemplateStore;
  /** Task records; a vend's one transaction also takes its rate token and spends its tokens' `jti`. */
  readonly tasks: TaskRepository;
  readonly authorizer: Authorizer;
  readonly broker: CredentialBroker;
  readonly audit: AuditLog;
  readonly lifecycle: LifecycleStarter;
  readonly tokens: TaskTokenSender;
  readonly notifier: ApprovalNotifier;
  /** Who is an admin, and how far each reaches. */
  readonly roles: StaffRoles;
  /** Cedar's decision on every action after the vend (audited when it denies). */
  readonly access: AccessControl;
  /**
   * Per-agent refresh rate; `429 rate_limited` with `Retry-After` when empty. (A vend draws on
   * its own bucket inside the task's transaction.)
   */
  readonly rateLimiter?: RateLimiter;
  /** The agent registry behind `GET /v1/agents`. */
  readonly agents?: AgentRegistry;
  /** The accounts jitv can revoke in: a template whose role is elsewhere never vends. */
  readonly targetAccounts?: TargetAccounts;
  readonly now?: () => Date;
  readonly newTaskId?: () => string;
}

/** Options of {@link TaskService.vend}, from the HTTP edge. */
export interface VendOptions {
  readonly idempotencyKey?: string;
  readonly requestId?: string;
  readonly sourceIp?: string;
}

/** What passed admission: everything the record needs, and how to refuse (audited) from here on. */
interface Admission {
  readonly template: TaskTemplate;
  readonly subject: VerifiedIdentity | undefined;
  readonly who: { readonly user?: string | undefined; readonly tenant?: string | undefined };
  readonly ttlSeconds: number;
  readonly parameters: Record<string, string>;
  readonly sessionPolicy: string;
  /** The tokens whose `jti` the vend spends, the subject token's first. */
  readonly tokens: readonly SingleUseToken[];
  readonly taskId: string;
  readonly base: { requestId: string | undefined; template: string; agent: { issuer: string; id: string } };
  readonly deny: (err: JitvError, extra?: Record<string, unknown>) => never;
  /** The decision's audit fields (purpose, deciding policies), for `vend.allowed`. */
  readonly allowed: Record<string, unknown>;
}

/** A credential from STS, with the request it answers, not yet recorded on its task. */
interface Minted {
  readonly request: AssumeRoleRequest;
  readonly issued: IssuedCredentials;
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
 * sandbox. Order of a vend: authenticate → validate → authorize → render (no I/O but the
 * cached template and policies) → one transaction: rate token, the tokens' `jti`, task record,
 * TTL lease, idempotency record, active slot → lifecycle start and STS side by side → issue
 * recorded → answer. Nothing is returned unless every step succeeded; a failure after the record
 * exists marks it `failed`.
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

  /**
   * `POST /v1/tasks`: admit → record (one write) → schedule, with STS beside it → issue recorded.
   * Nothing is returned unless every step succeeded; a failure after the record exists marks the
   * task `failed`.
   */
  async vend(agent: VerifiedIdentity, input: VendInput, options: VendOptions = {}): Promise<VendResult> {
    const admitted = await this.#admit(agent, input, options);
    const { template, deny } = admitted;
    const task = this.#taskOf(admitted, agent, input, options);
    const maxActive = template.maxActivePerAgent;
    // The vend's one critical write: every check that needs the table is a condition of it.
    const created = await this.#d.tasks
      .create(task, {
        ...(maxActive === undefined ? {} : { maxActive }),
        rate: true,
        ...(admitted.tokens.length === 0 ? {} : { tokens: admitted.tokens }),
      })
      .catch((err: JitvError) => deny(err, err instanceof ReplayedTokenError ? { token: err.token } : {}));
    if (!created.created)
      return this.#replayIdempotent(agent, created.task, task, admitted, options.requestId);
    this.#d.audit.record({
      event: "vend.allowed",
      ...admitted.base,
      ...admitted.who,
      taskId: task.taskId,
      ...admitted.allowed,
    });
    // Best effort, and off the critical path: the registry feeds the inventory, never a decision,
    // so it runs beside scheduling and issuing and is only awaited before answering.
    const registered = (
      this.#d.agents?.recordAgentSeen(
        agentRef(agent, agent.zone),
        new Date(task.createdAt),
        admitted.who.tenant ? { tenant: admitted.who.tenant } : {},
      ) ?? Promise.resolve()
    ).catch(() => undefined);
    try {
      return await this.#scheduleAndIssue(task, admitted, options);
    } finally {
      await registered;
    }
  }

  async #scheduleAndIssue(task: Task, admitted: Admission, options: VendOptions): Promise<VendResult> {
    const { template } = admitted;
    if (task.status === "active") {
      // STS while the lifecycle starts: the credential is held here until both succeeded and the
      // issue is recorded; when scheduling fails it is dropped, never returned (section 6).
      const [scheduled, minted] = await Promise.allSettled([
        this.#schedule(task, admitted),
        this.#mint(task, template),
      ]);
      if (scheduled.status === "rejected") throw scheduled.reason;
      const credentials = await this.#record(task, minted, { requestId: options.requestId, fresh: true });
      return { status: 201, task, credentials };
    }
    // Pending approval: scheduled (it waits for approvers or its deadline), nothing issued.
    await this.#schedule(task, admitted);
    this.#d.audit.record({
      event: "task.pending_approval",
      ...admitted.base,
      ...admitted.who,
      taskId: task.taskId,
      quorum: template.approval.quorum,
    });
    // Approvers learn of it by notification; a lost notification delays, never grants.
    await this.#d.notifier.pendingApproval(task, template.approval.quorum).catch(() => undefined);
    return { status: 202, task };
  }

  /**
   * Everything a vend must pass before anything is written, without I/O but the cached template
   * and policies: the template and zone, the subject token (customer zone), TTL and parameters,
   * Cedar's `Vend`, the rendered policy and tags; and the tokens whose `jti` the record's write
   * will spend (its conditions check the vend rate and the tokens' single use). Each refusal is
   * audited `vend.denied`; `vend.allowed` follows once the task record exists (or the replay
   * matched), so the trail never says allowed for a vend that was refused.
   */
  async #admit(agent: VerifiedIdentity, input: VendInput, options: VendOptions): Promise<Admission> {
    const { audit } = this.#d;
    const template = await this.#d.templates.get(input.template);
    if (!template) throw new NotFoundError("unknown template");
    const base = { requestId: options.requestId, template: template.name, agent: agentRef(agent) };
    let who: { user?: string | undefined; tenant?: string | undefined } = {};
    const deny = (err: JitvError, extra: Record<string, unknown> = {}): never => {
      audit.record({ event: "vend.denied", ...base, ...who, reason: err.message, ...extra });
      throw err;
    };

    if (agent.zone !== template.zone) {
      deny(new ForbiddenError(`a ${agent.zone}-zone agent cannot use a ${template.zone}-zone template`));
    }
    try {
      assertTargetAccountForVend(template.roleArn, this.#d.targetAccounts);
    } catch (err) {
      deny(err as JitvError);
    }
    const subject = await this.#verifySubject(template, agent, input.subjectToken).catch((err: JitvError) =>
      deny(err),
    );
    who = { user: subject?.id, tenant: subject?.tenant };

    const ttlSeconds = input.ttlSeconds ?? template.ttl.defaultSeconds;
    if (ttlSeconds < 900 || ttlSeconds > template.ttl.maxSeconds) {
      deny(new InvalidRequestError(`ttlSeconds must be between 900 and ${template.ttl.maxSeconds}`));
    }
    let parameters: Record<string, string> = {};
    try {
      parameters = validateParameters(template, input.parameters);
    } catch (err) {
      deny(err as JitvError);
    }

    const decision = await this.#d.authorizer.authorizeVend({
      agent,
      template,
      ...(subject ? { subject } : {}),
      ...(input.purpose === undefined ? {} : { purpose: input.purpose }),
      ttlSeconds,
      parameters,
      ...(options.sourceIp === undefined ? {} : { sourceIp: options.sourceIp }),
    });
    const policyVersion =
      decision.policyVersion === undefined ? {} : { policyVersion: decision.policyVersion };
    if (!decision.allowed)
      deny(new ForbiddenError(decision.reason), { policies: decision.policies, ...policyVersion });

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
      deny(err as JitvError);
    }
    // Both tokens are single-use for vending: the agent's, and the delegation token it was handed.
    // They are spent by the task's transaction, after its rate token: a rate-limited agent
    // retries with the same tokens, and a replayed subject token never burns the agent's.
    const tokens: SingleUseToken[] = [];
    for (const [token, role] of [
      [subject, "subject"],
      [agent, "agent"],
    ] as const) {
      if (token?.jti !== undefined)
        tokens.push({ issuer: token.issuer, jti: token.jti, expiresAt: token.expiresAt, role });
    }
    const allowed = {
      ...(input.purpose === undefined ? {} : { purpose: input.purpose }),
      policies: decision.policies,
      ...policyVersion,
    };
    return {
      template,
      subject,
      who,
      ttlSeconds,
      parameters,
      sessionPolicy,
      tokens,
      taskId,
      base,
      deny,
      allowed,
    };
  }

  /** The task record of an admitted vend. A pending task lives until its approval deadline; its own life starts at approval. */
  #taskOf(admitted: Admission, agent: VerifiedIdentity, input: VendInput, options: VendOptions): Task {
    const { template, subject, ttlSeconds } = admitted;
    const pending = template.approval.required;
    const now = this.#now();
    const lifeSeconds = pending ? template.approval.timeoutSeconds : ttlSeconds;
    return {
      taskId: admitted.taskId,
      status: pending ? "pending_approval" : "active",
      template: template.name,
      zone: template.zone,
      roleArn: template.roleArn,
      agent: agentRef(agent),
      ...(subject?.tenant === undefined
        ? {}
        : { onBehalfOf: { issuer: subject.issuer, user: subject.id, tenant: subject.tenant } }),
      ...(input.purpose === undefined ? {} : { purpose: input.purpose }),
      parameters: admitted.parameters,
      sessionPolicy: admitted.sessionPolicy,
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + lifeSeconds * 1000).toISOString(),
      ttlSeconds,
      ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
      issuedCount: 0,
    };
  }

  /**
   * Schedules the revocation (the lifecycle execution; the TTL lease is in the record) before any
   * credential is handed out. A failure marks the task `failed`.
   */
  async #schedule(task: Task, admitted: Admission): Promise<void> {
    try {
      await this.#d.lifecycle.start(task);
    } catch (cause) {
      const err = new UpstreamUnavailableError("could not schedule the task's lifecycle", { cause });
      await this.#d.tasks.markFailed(task.taskId, err.message).catch(() => undefined);
      this.#d.audit.record({
        event: "task.failed",
        ...admitted.base,
        ...admitted.who,
        taskId: task.taskId,
        reason: err.message,
      });
      throw err;
    }
  }

  /**
   * `GET /v1/tasks/{id}`: the owner agent or an admin; anyone else gets 404. Cedar then decides
   * `ReadTask` (a stored forbid answers 403).
   */
  async getTask(caller: VerifiedIdentity, taskId: string, requestId?: string): Promise<Task> {
    const task = isTaskId(taskId) ? await this.#d.tasks.get(taskId) : undefined;
    if (!task || !(isOwner(caller, task) || this.#d.roles.administers(caller, task)))
      throw new NotFoundError("unknown task");
    const current = { ...task, status: effectiveStatus(task, this.#now()) };
    await this.#d.access.require("ReadTask", caller, { kind: "task", task: current }, requestId);
    return current;
  }

  /** `POST /v1/tasks/{id}/credentials`: fresh credentials for the owner's `active` task. */
  async refresh(caller: VerifiedIdentity, taskId: string, requestId?: string): Promise<VendResult> {
    const task = await this.#owned(caller, taskId);
    const status = effectiveStatus(task, this.#now());
    if (status !== "active") throw new ConflictError(`the task is ${status}`);
    const template = await this.#d.templates.get(task.template);
    if (!template) throw new ConflictError("the task's template no longer exists");
    await this.#d.access.require("Refresh", caller, { kind: "task", task, template }, requestId);
    await this.#d.rateLimiter?.consume(agentRef(caller), "refresh");
    const credentials = await this.#issue(task, template, { requestId, fresh: false });
    return { status: 201, task, credentials };
  }

  /** `POST /v1/tasks/{id}/complete`: the owner is done; revocation and rotation follow at once. */
  async complete(caller: VerifiedIdentity, taskId: string, requestId?: string): Promise<Task> {
    const task = await this.#owned(caller, taskId);
    return this.#end(task, "completed", undefined, requestId, {}, () =>
      this.#d.access.require("Complete", caller, { kind: "task", task }, requestId),
    );
  }

  /** `POST /v1/tasks/{id}/revoke`: an admin ends a task with a reason. */
  async revoke(caller: VerifiedIdentity, taskId: string, reason: string, requestId?: string): Promise<Task> {
    if (!this.#d.roles.isAdmin(caller)) throw new ForbiddenError("only admins may revoke tasks");
    const task = isTaskId(taskId) ? await this.#d.tasks.get(taskId) : undefined;
    // Outside the admin's reach (another tenant, or a workforce task for a customer-zone admin): unknown.
    if (!task || !this.#d.roles.administers(caller, task)) throw new NotFoundError("unknown task");
    return this.#end(task, "revoked", reason, requestId, { revokedBy: caller.id }, () =>
      this.#d.access.require("Revoke", caller, { kind: "task", task }, requestId),
    );
  }

  /**
   * What an admin's `ListTasks` / `ListAgents` covers, each zone decided by Cedar (after the admin
   * routes' own admins check): a workforce admin every zone Cedar allows, a customer-zone admin
   * its own tenant of the customer zone. The listing then reads only that scope.
   * @throws ForbiddenError naming the policies when Cedar denies every zone, or the caller
   *   administers nothing (a customer-zone admin token without a tenant)
   */
  async inventoryScope(
    caller: VerifiedIdentity,
    action: "ListTasks" | "ListAgents",
    requestId?: string,
  ): Promise<InventoryScope> {
    if (caller.zone === "customer") {
      if (caller.tenant === undefined)
        throw new ForbiddenError("a customer-zone admin token needs a tenant claim");
      await this.#d.access.require(
        action,
        caller,
        { kind: "zone", zone: "customer", tenant: caller.tenant },
        requestId,
      );
      return { zone: "customer", tenant: caller.tenant };
    }
    // The workforce zone decides whether the admin may list at all; the customer zone only widens it.
    await this.#d.access.require(action, caller, { kind: "zone", zone: "workforce" }, requestId);
    const customer = await this.#d.access
      .require(action, caller, { kind: "zone", zone: "customer" }, requestId)
      .then(
        () => true,
        () => false,
      );
    return customer ? {} : { zone: "workforce" };
  }

  #auditTask(event: Parameters<AuditLog["record"]>[0]["event"], task: Task, requestId?: string, extra = {}) {
    this.#d.audit.record({ event, requestId, ...taskAuditFields(task), ...extra });
  }

  /** Verifies any token (agent or user) for read access. */
  authenticateAny(token: string): Promise<VerifiedIdentity> {
    return this.#d.verifier.verify(token);
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
    /** Cedar's decision, asked once the status allows the transition (so a 409 comes first). */
    authorize: () => Promise<void> = async () => undefined,
  ): Promise<Task> {
    const status = effectiveStatus(task, this.#now());
    const from = outcome === "revoked" ? (["active", "pending_approval"] as const) : (["active"] as const);
    const endable = (from as readonly string[]).includes(status);
    if (endable) await authorize();
    const ended = endable && (await this.#d.tasks.transition(task.taskId, from, outcome, reason));
    if (!ended)
      throw new ConflictError(status === "active" ? "the task is no longer active" : `the task is ${status}`);
    this.#auditTask(outcome === "completed" ? "task.completed" : "task.revoked", ended, requestId, {
      ...(reason === undefined ? {} : { reason }),
      ...extra,
    });
    if (!(await signalTaskEnded(this.#d.tokens, ended, outcome))) {
      this.#d.audit.record({ event: "lifecycle.signal_failed", requestId, taskId: ended.taskId });
    }
    return ended;
  }

  async #verifySubject(template: TaskTemplate, agent: VerifiedIdentity, subjectToken: string | undefined) {
    if (template.zone === "workforce") {
      if (subjectToken !== undefined) {
        throw new InvalidRequestError("subjectToken is only accepted for customer-zone templates");
      }
      return undefined;
    }
    if (subjectToken === undefined)
      throw new InvalidRequestError("subjectToken is required for this template");
    const subject = await this.#d.verifier.verify(subjectToken, { kind: "user", use: "subject" });
    if (subject.zone !== template.zone)
      throw new ForbiddenError("the subject token is not from a customer-zone issuer");
    if (subject.tenant === undefined) throw new ForbiddenError("the subject token has no tenant claim");
    // A delegation token names its actor (RFC 8693 `act`): it must be this agent, not another one.
    // (A token of the profile's delegation audience has no `act`; the verifier checked the audience.)
    const actor = subject.actor;
    if (
      actor !== undefined &&
      (actor.sub !== agent.subject || (actor.iss !== undefined && actor.iss !== agent.issuer))
    ) {
      throw new ForbiddenError("the subject token was issued to another actor");
    }
    assertSafeIdentityValue("tenant", subject.tenant);
    return subject;
  }

  /**
   * A replayed Idempotency-Key: the same task, only for the same request (template, parameters,
   * user and tenant; else `409`), and only when Cedar still allows it, as for a refresh.
   */
  async #replayIdempotent(
    agent: VerifiedIdentity,
    existing: Task,
    requested: Task,
    admitted: Admission,
    requestId?: string,
  ) {
    const { template, deny } = admitted;
    if (!sameRequest(existing, requested)) {
      deny(
        new ConflictError(
          "Idempotency-Key was already used for a different request (template, parameters, user or tenant)",
        ),
        { taskId: existing.taskId },
      );
    }
    const status = effectiveStatus(existing, this.#now());
    if (status !== "pending_approval" && status !== "active") {
      deny(new ConflictError(`the task for this Idempotency-Key is ${status}`), { taskId: existing.taskId });
    }
    await this.#d.access
      .require(
        status === "active" ? "Refresh" : "ReadTask",
        agent,
        { kind: "task", task: existing, template },
        requestId,
      )
      .catch((err: JitvError) => deny(err, { taskId: existing.taskId }));
    this.#d.audit.record({
      event: "vend.allowed",
      ...admitted.base,
      ...admitted.who,
      taskId: existing.taskId,
      replay: true,
      ...admitted.allowed,
    });
    if (status === "pending_approval") return { status: 202 as const, task: existing };
    // The first request may still be scheduling the lifecycle: make sure it is (idempotent by
    // task id, beside STS) before any credential leaves. Should the first request fail the task
    // meanwhile, the issue below is refused (only an active task records credentials).
    const [scheduled, minted] = await Promise.allSettled([
      this.#d.lifecycle.start(existing),
      this.#mint(existing, template),
    ]);
    if (scheduled.status === "rejected") {
      throw new UpstreamUnavailableError("could not schedule the task's lifecycle", {
        cause: scheduled.reason,
      });
    }
    const credentials = await this.#record(existing, minted, { requestId, fresh: false });
    return { status: 201 as const, task: existing, credentials };
  }

  /** Fresh credentials for the task (refresh, replay): minted, then recorded. */
  async #issue(
    task: Task,
    template: TaskTemplate,
    options: { requestId?: string | undefined; fresh: boolean },
  ): Promise<IssuedCredentials> {
    const minted = await Promise.allSettled([this.#mint(task, template)]);
    return this.#record(task, minted[0], options);
  }

  /** Asks STS; the credential is not handed out before {@link #record} has counted it. */
  async #mint(task: Task, template: TaskTemplate): Promise<Minted> {
    const request = buildAssumeRoleRequest({ task, template, now: this.#now() });
    return { request, issued: await this.#d.broker.assumeRole(request) };
  }

  /**
   * Records a minted credential on the task (only an active task records one) and returns it,
   * capped at the task's deadline. A failed mint or record returns nothing; a `fresh` task is
   * then marked `failed`.
   */
  async #record(
    task: Task,
    minted: PromiseSettledResult<Minted>,
    options: { requestId?: string | undefined; fresh: boolean },
  ): Promise<IssuedCredentials> {
    const { audit, tasks } = this.#d;
    const base = { requestId: options.requestId, ...taskAuditFields(task) };
    try {
      if (minted.status === "rejected") throw minted.reason;
      const { request, issued } = minted.value;
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

function agentRef(agent: VerifiedIdentity): AgentRef;
function agentRef(agent: VerifiedIdentity, zone: Zone): AgentRef & { zone: Zone };
function agentRef(agent: VerifiedIdentity, zone?: Zone) {
  return { issuer: agent.issuer, id: agent.id, ...(zone === undefined ? {} : { zone }) };
}

/** A replay asks for the same thing: template, parameters, the user and tenant it acts for. */
function sameRequest(a: Task, b: Task): boolean {
  const params = (t: Task) =>
    JSON.stringify(Object.entries(t.parameters ?? {}).sort(([x], [y]) => x.localeCompare(y)));
  return (
    a.template === b.template &&
    params(a) === params(b) &&
    a.onBehalfOf?.issuer === b.onBehalfOf?.issuer &&
    a.onBehalfOf?.user === b.onBehalfOf?.user &&
    a.onBehalfOf?.tenant === b.onBehalfOf?.tenant
  );
}

function isOwner(caller: VerifiedIdentity, task: Task): boolean {
  return caller.kind === "agent" && caller.issuer === task.agent.issuer && caller.id === task.agent.id;
}
