import type { TaskLifecycle } from "../../lib/app/lifecycle-steps.js";
/**
 * In-memory fakes of the ports the app services use, for fast unit tests. Each mirrors the
 * documented semantics of its DynamoDB (or AWS) adapter, records the calls it receives, and can be
 * told to make its next call throw (`fail`). Fakes that share a {@link CallJournal} record their
 * calls in one list as well, so a test can assert the order of calls across ports.
 */
import type { Verifier } from "../../lib/app/task-service.js";
import type { AuditEvent } from "../../lib/audit/audit-log.js";
import { MemoryAuditLog } from "../../lib/audit/logger-audit-log.js";
import type { CredentialBroker } from "../../lib/credentials/broker.js";
import {
  ConflictError,
  InternalError,
  InvalidTokenError,
  NotFoundError,
  RateLimitedError,
  UpstreamUnavailableError,
} from "../../lib/domain/errors.js";
import type { IssuerKind, VerifiedIdentity, Zone } from "../../lib/domain/identity.js";
import type { AssumeRoleRequest, IssuedCredentials } from "../../lib/domain/sts.js";
import { assertStsLimits } from "../../lib/domain/sts-request.js";
import type { AgentRef, Task, TaskStatus } from "../../lib/domain/task.js";
import type { TaskTemplate } from "../../lib/domain/template.js";
import { REPLAY_GRACE_SECONDS } from "../../lib/store/replay.js";
import type { ApprovalStore } from "../../lib/tasks/approval-store.js";
import type { AgentRegistry } from "../../lib/tasks/inventory.js";
import {
  type LifecycleInput,
  type LifecycleSignal,
  type LifecycleStarter,
  lifecycleInput,
  type TaskTokenSender,
} from "../../lib/tasks/lifecycle.js";
import { DEFAULT_VEND_RATE, type RateBucket, type RateLimiter } from "../../lib/tasks/limits.js";
import type { ApprovalNotifier } from "../../lib/tasks/notifier.js";
import {
  type CreateTaskOptions,
  type CreateTaskResult,
  ReplayedTokenError,
  type TaskMarks,
  type TaskRepository,
} from "../../lib/tasks/repository.js";
import type { TemplateStore } from "../../lib/tasks/template-store.js";

export { MemoryAuditLog };

/** A settable clock: pass `clock.now` as every `now` option, move it with `advance`. */
export class FakeClock {
  #current: Date;

  constructor(start: Date | string) {
    this.#current = new Date(start);
  }

  readonly now = (): Date => new Date(this.#current.getTime());

  advance(seconds: number): Date {
    this.#current = new Date(this.#current.getTime() + seconds * 1000);
    return this.now();
  }
}

/** One call a fake received. `label` is `port.method` (`audit.<event>` for audit events). */
export interface JournalEntry {
  readonly label: string;
  readonly args: readonly unknown[];
}

/** The calls of every fake that shares it, in the order they were made, across ports. */
export class CallJournal {
  readonly entries: JournalEntry[] = [];

  /** The labels in call order, e.g. `["replay.consume", "audit.vend.allowed", "tasks.create"]`. */
  labels(): string[] {
    return this.entries.map((entry) => entry.label);
  }
}

/** What every fake's constructor accepts. */
export interface FakeOptions {
  /** Also record calls here, to assert order across ports. */
  readonly journal?: CallJournal;
  /** The clock of time-dependent semantics (expiry, refill). @default () => new Date() */
  readonly now?: () => Date;
}

/** One recorded call of a fake: the method and its arguments exactly as passed. */
export interface FakeCall<M extends string> {
  readonly method: M;
  readonly args: readonly unknown[];
}

/** Call recording and the `fail` hook shared by the fakes. */
abstract class Fake<M extends string> {
  /** Every call received, oldest first, including the ones made to fail. */
  readonly calls: FakeCall<M>[] = [];
  protected readonly now: () => Date;
  readonly #port: string;
  readonly #journal: CallJournal | undefined;
  readonly #armed: { readonly method: M | undefined; readonly error: Error }[] = [];
  readonly #holds: { readonly method: M; readonly gate: Promise<void> }[] = [];

  constructor(port: string, options: FakeOptions) {
    this.#port = port;
    this.#journal = options.journal;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Makes the next call (of `method`, when given) throw `error` instead of doing anything.
   * Armed failures are used up one per call, in the order armed.
   */
  fail(error: Error = new UpstreamUnavailableError(`${this.#port} unavailable`), method?: M): this {
    this.#armed.push({ method, error });
    return this;
  }

  /**
   * Makes the next call of `method` wait, unrecorded, until the returned function is called; it
   * then proceeds (or fails, when a failure is armed). For tests of calls that run side by side,
   * in either order. Only fakes whose methods check {@link Fake.held} can be held.
   */
  hold(method: M): () => void {
    let release = () => {};
    const gate = new Promise<void>((done) => {
      release = done;
    });
    this.#holds.push({ method, gate });
    return release;
  }

  /** The gate of a {@link Fake.hold} on `method`, used up; `undefined` when none is set. */
  protected held(method: M): Promise<void> | undefined {
    const at = this.#holds.findIndex((hold) => hold.method === method);
    if (at === -1) return undefined;
    return this.#holds.splice(at, 1)[0]?.gate;
  }

  /** The arguments of each call of `method`, oldest first. */
  callsOf(method: M): (readonly unknown[])[] {
    return this.calls.filter((call) => call.method === method).map((call) => call.args);
  }

  /** Records a call, then throws if a failure is armed for it. */
  protected enter(method: M, args: readonly unknown[], label = `${this.#port}.${method}`): void {
    this.calls.push({ method, args });
    this.#journal?.entries.push({ label, args });
    const at = this.#armed.findIndex((armed) => armed.method === undefined || armed.method === method);
    if (at === -1) return;
    const [armed] = this.#armed.splice(at, 1);
    if (armed) throw armed.error;
  }
}

/** {@link MemoryAuditLog} that also writes each event to a journal as `audit.<event>`. */
export class JournalAuditLog extends MemoryAuditLog {
  readonly #journal: CallJournal;

  constructor(journal: CallJournal) {
    super();
    this.#journal = journal;
  }

  override record(event: AuditEvent): void {
    this.#journal.entries.push({ label: `audit.${event.event}`, args: [event] });
    super.record(event);
  }

  /** The events' names in order. */
  names(): string[] {
    return this.events.map((event) => event.event);
  }
}

/**
 * The token verifier: `tokens` maps each token string to the identity it verifies as. An unknown
 * token, or one of another `kind` than asked for, is refused with `InvalidTokenError`.
 */
export class MemoryVerifier extends Fake<"verify"> implements Verifier {
  readonly #tokens: Map<string, VerifiedIdentity>;

  constructor(tokens: Record<string, VerifiedIdentity> = {}, options: FakeOptions = {}) {
    super("verifier", options);
    this.#tokens = new Map(Object.entries(tokens));
  }

  /** Makes `token` verify as `identity`. */
  add(token: string, identity: VerifiedIdentity): this {
    this.#tokens.set(token, identity);
    return this;
  }

  async verify(
    token: string,
    options?: { kind?: IssuerKind; use?: "bearer" | "subject" },
  ): Promise<VerifiedIdentity> {
    this.enter("verify", options === undefined ? [token] : [token, options]);
    const identity = this.#tokens.get(token);
    if (!identity) throw new InvalidTokenError("invalid token");
    if (options?.kind !== undefined && identity.kind !== options.kind) {
      throw new InvalidTokenError(`not a token of an ${options.kind} issuer`);
    }
    return identity;
  }
}

/** Templates by name; `list` is ordered by name, as the table's index returns them. */
export class MemoryTemplateStore extends Fake<"get" | "put" | "list"> implements TemplateStore {
  readonly templates = new Map<string, TaskTemplate>();

  constructor(templates: readonly TaskTemplate[] = [], options: FakeOptions = {}) {
    super("templates", options);
    for (const template of templates) this.templates.set(template.name, structuredClone(template));
  }

  async get(name: string): Promise<TaskTemplate | undefined> {
    this.enter("get", [name]);
    const template = this.templates.get(name);
    return template === undefined ? undefined : structuredClone(template);
  }

  async put(template: TaskTemplate): Promise<void> {
    this.enter("put", [template]);
    this.templates.set(template.name, structuredClone(template));
  }

  async list(): Promise<TaskTemplate[]> {
    this.enter("list", []);
    return [...this.templates.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((template) => structuredClone(template));
  }
}

type TaskRepositoryMethod = "create" | "get" | "markFailed" | "recordIssue" | "transition" | "mark";

/** An Idempotency-Key record: the task it names, until `ttlEpoch` (epoch seconds) has passed. */
interface IdempotencyRecord {
  readonly taskId: string;
  readonly ttlEpoch: number;
}

/**
 * {@link TaskRepository} in memory, with the DynamoDB adapter's semantics: an Idempotency-Key
 * names the agent's task until the task's deadline (an expired record no longer blocks); a create
 * with `maxActive` takes one of the agent's active slots for the template (`RateLimitedError`
 * when all are taken) and the status change that ends the task frees it, once; a replayed key
 * returns the existing task and takes no slot; `recordIssue` only counts for an `active` record.
 * A create's claims are checked and taken with it, all or nothing, in the adapter's order: the
 * rate token (from `rateLimiter`'s `vend` bucket, when given), then each token's `jti` (spent
 * until `max(exp, now) + graceSeconds`, see `usedTokens`), then the task, its idempotency record
 * and its slot. Tasks are copied in and out, so a caller's object never aliases the stored one.
 */
export class MemoryTaskRepository extends Fake<TaskRepositoryMethod> implements TaskRepository {
  readonly #tasks = new Map<string, Task>();
  readonly #idempotency = new Map<string, IdempotencyRecord>();
  /** Active-slot counts by template and agent. */
  readonly #activeSlots = new Map<string, number>();
  /** The slot each slot-holding task holds. */
  readonly #slotOf = new Map<string, string>();
  /** Spent token ids: `issuer|jti` → epoch second after which the entry no longer blocks. */
  readonly usedTokens = new Map<string, number>();
  readonly #rate: MemoryRateLimiter | undefined;
  readonly #graceSeconds: number;

  constructor(
    options: FakeOptions & { readonly rateLimiter?: MemoryRateLimiter; readonly graceSeconds?: number } = {},
  ) {
    super("tasks", options);
    this.#rate = options.rateLimiter;
    this.#graceSeconds = options.graceSeconds ?? REPLAY_GRACE_SECONDS;
  }

  /**
   * Stores tasks as they are, with their Idempotency-Key records but no active slot, for tests
   * that start from existing tasks.
   */
  seed(...tasks: Task[]): this {
    for (const task of tasks) {
      this.#tasks.set(task.taskId, structuredClone(task));
      if (task.idempotencyKey !== undefined) {
        this.#idempotency.set(idempotencyKeyOf(task.agent, task.idempotencyKey), {
          taskId: task.taskId,
          ttlEpoch: toEpochSeconds(task.expiresAt),
        });
      }
    }
    return this;
  }

  /** The stored record of a task, without recording a call. */
  peek(taskId: string): Task | undefined {
    const task = this.#tasks.get(taskId);
    return task === undefined ? undefined : structuredClone(task);
  }

  /** Every stored task, in creation order. */
  all(): Task[] {
    return [...this.#tasks.values()].map((task) => structuredClone(task));
  }

  /** How many active slots of `template` the agent holds. */
  activeSlots(template: string, agent: AgentRef): number {
    return this.#activeSlots.get(slotKey(template, agent)) ?? 0;
  }

  async create(task: Task, options: CreateTaskOptions = {}): Promise<CreateTaskResult> {
    this.enter("create", Object.keys(options).length === 0 ? [task] : [task, options]);
    const { maxActive } = options;
    if (maxActive !== undefined && !(Number.isInteger(maxActive) && maxActive >= 1)) {
      throw new InternalError("maxActive must be a positive integer");
    }
    const now = this.#nowSeconds();
    const takeRate = options.rate ? this.#rate?.reserve(task.agent, "vend") : undefined;
    for (const token of options.tokens ?? []) {
      const until = this.usedTokens.get(`${token.issuer}|${token.jti}`);
      if (until !== undefined && !(until < now)) throw new ReplayedTokenError(token.role);
    }
    const claim = () => {
      takeRate?.();
      for (const token of options.tokens ?? []) {
        this.usedTokens.set(
          `${token.issuer}|${token.jti}`,
          Math.max(Math.ceil(token.expiresAt), now) + this.#graceSeconds,
        );
      }
    };
    if (task.idempotencyKey !== undefined) {
      const record = this.#idempotency.get(idempotencyKeyOf(task.agent, task.idempotencyKey));
      if (record && record.ttlEpoch >= now) {
        const existing = this.#tasks.get(record.taskId);
        if (!existing) throw new InternalError("idempotency record points at a missing task");
        claim();
        return { created: false, task: structuredClone(existing) };
      }
    }
    if (this.#tasks.has(task.taskId)) throw new InternalError("task id already exists");
    const slot =
      maxActive !== undefined && holdsSlot(task.status) ? slotKey(task.template, task.agent) : undefined;
    if (slot !== undefined && (this.#activeSlots.get(slot) ?? 0) >= (maxActive ?? 0)) {
      throw new RateLimitedError("too many active tasks for this template");
    }
    claim();
    this.#tasks.set(task.taskId, structuredClone(task));
    if (task.idempotencyKey !== undefined) {
      this.#idempotency.set(idempotencyKeyOf(task.agent, task.idempotencyKey), {
        taskId: task.taskId,
        ttlEpoch: toEpochSeconds(task.expiresAt),
      });
    }
    if (slot !== undefined) {
      this.#activeSlots.set(slot, (this.#activeSlots.get(slot) ?? 0) + 1);
      this.#slotOf.set(task.taskId, slot);
    }
    return { created: true, task: structuredClone(task) };
  }

  async get(taskId: string): Promise<Task | undefined> {
    this.enter("get", [taskId]);
    return this.peek(taskId);
  }

  /** @throws NotFoundError for a missing task; ConflictError when it is neither active nor pending */
  async markFailed(taskId: string, reason: string): Promise<void> {
    this.enter("markFailed", [taskId, reason]);
    const current = this.#tasks.get(taskId);
    if (!current) throw new NotFoundError("task not found");
    if (!holdsSlot(current.status)) throw new ConflictError(`task is ${current.status}`);
    this.#changeStatus(current, "failed", reason);
  }

  /**
   * @throws InternalError when the expiration is not a time; NotFoundError for a missing task;
   *   ConflictError when the record is not `active`
   */
  async recordIssue(taskId: string, credentialExpiration: string): Promise<void> {
    this.enter("recordIssue", [taskId, credentialExpiration]);
    const ms = Date.parse(credentialExpiration);
    if (Number.isNaN(ms)) throw new InternalError("credential expiration is not a time");
    const current = this.#tasks.get(taskId);
    if (!current) throw new NotFoundError("task not found");
    if (current.status !== "active") throw new ConflictError("task is no longer active");
    const expiry = new Date(ms).toISOString();
    const last = current.lastCredentialExpiry;
    this.#tasks.set(taskId, {
      ...current,
      issuedCount: current.issuedCount + 1,
      lastCredentialExpiry: last === undefined || last < expiry ? expiry : last,
    });
  }

  /** @throws NotFoundError for a missing task */
  async transition(
    taskId: string,
    from: readonly TaskStatus[],
    to: TaskStatus,
    reason?: string,
  ): Promise<Task | undefined> {
    this.enter(
      "transition",
      reason === undefined ? [taskId, [...from], to] : [taskId, [...from], to, reason],
    );
    const current = this.#tasks.get(taskId);
    if (!current) throw new NotFoundError("task not found");
    if (!from.includes(current.status)) return undefined;
    return structuredClone(this.#changeStatus(current, to, reason));
  }

  /** @throws NotFoundError for a missing task */
  async mark(taskId: string, marks: TaskMarks): Promise<void> {
    this.enter("mark", [taskId, marks]);
    const current = this.#tasks.get(taskId);
    if (!current) throw new NotFoundError("task not found");
    const set = Object.fromEntries(Object.entries(marks).filter(([, value]) => value !== undefined));
    this.#tasks.set(taskId, { ...current, ...set });
  }

  /**
   * The approval store's activation (see {@link MemoryApprovalStore}): `pending_approval` →
   * `active` with the new deadline, and the task's Idempotency-Key record moved to it.
   */
  activatePending(
    task: Pick<Task, "taskId" | "agent" | "idempotencyKey">,
    expiresAt: string,
  ): Task | undefined {
    const current = this.#tasks.get(task.taskId);
    if (current?.status !== "pending_approval") return undefined;
    const key =
      task.idempotencyKey === undefined ? undefined : idempotencyKeyOf(task.agent, task.idempotencyKey);
    // The adapter's transaction also requires the key's record to still name this task; when it
    // does not, the transaction is cancelled on that item, which the adapter reports as unavailable.
    if (key !== undefined && this.#idempotency.get(key)?.taskId !== task.taskId) {
      throw new UpstreamUnavailableError("task store unavailable");
    }
    const active: Task = { ...current, status: "active", expiresAt };
    this.#tasks.set(task.taskId, active);
    if (key !== undefined)
      this.#idempotency.set(key, { taskId: task.taskId, ttlEpoch: toEpochSeconds(expiresAt) });
    return structuredClone(active);
  }

  /** The approval store's `recordApproval`: one more distinct approver of a pending task. */
  addApprover(taskId: string, approver: string): readonly string[] | undefined {
    const current = this.#tasks.get(taskId);
    if (current?.status !== "pending_approval") return undefined;
    const approvals = current.approvals ?? [];
    if (approvals.includes(approver)) return undefined;
    const next = [...approvals, approver];
    this.#tasks.set(taskId, { ...current, approvals: next });
    return [...next];
  }

  #changeStatus(current: Task, to: TaskStatus, reason: string | undefined): Task {
    const endsTask = to === "completed" || to === "revoked" || to === "expired";
    const next: Task = {
      ...current,
      status: to,
      ...(reason === undefined ? {} : { reason }),
      ...(endsTask ? { endedAt: current.endedAt ?? this.now().toISOString() } : {}),
    };
    this.#tasks.set(current.taskId, next);
    const slot = this.#slotOf.get(current.taskId);
    if (slot !== undefined && !holdsSlot(to)) {
      this.#slotOf.delete(current.taskId);
      this.#activeSlots.set(slot, (this.#activeSlots.get(slot) ?? 1) - 1);
    }
    return next;
  }

  #nowSeconds(): number {
    return Math.floor(this.now().getTime() / 1000);
  }
}

/**
 * {@link ApprovalStore} over a {@link MemoryTaskRepository}'s records, as the DynamoDB adapter
 * works on the task items: distinct approvers of a pending task only; `activate` only from
 * `pending_approval`, moving the deadline and the Idempotency-Key record together.
 */
export class MemoryApprovalStore extends Fake<"recordApproval" | "activate"> implements ApprovalStore {
  readonly #tasks: MemoryTaskRepository;

  constructor(tasks: MemoryTaskRepository, options: FakeOptions = {}) {
    super("approvals", options);
    this.#tasks = tasks;
  }

  async recordApproval(taskId: string, approver: string): Promise<readonly string[] | undefined> {
    this.enter("recordApproval", [taskId, approver]);
    return this.#tasks.addApprover(taskId, approver);
  }

  async activate(
    task: Pick<Task, "taskId" | "agent" | "idempotencyKey">,
    expiresAt: string,
  ): Promise<Task | undefined> {
    this.enter("activate", [task, expiresAt]);
    return this.#tasks.activatePending(task, expiresAt);
  }
}

/** What the registry knows of one agent (and, per tenant, of its delegated tasks). */
export interface SeenAgent {
  readonly issuer: string;
  readonly id: string;
  readonly zone: Zone;
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly totalTasks: number;
}

/** {@link AgentRegistry}: one record per agent, and one per agent and tenant for delegated tasks. */
export class MemoryAgentRegistry extends Fake<"recordAgentSeen"> implements AgentRegistry {
  /** By `issuer|id`, or `issuer|id|tenant` for a tenant's view. */
  readonly agents = new Map<string, SeenAgent>();

  constructor(options: FakeOptions = {}) {
    super("agents", options);
  }

  async recordAgentSeen(
    agent: AgentRef & { readonly zone: Zone },
    at: Date,
    options: { readonly countTask?: boolean; readonly tenant?: string } = {},
  ): Promise<void> {
    this.enter("recordAgentSeen", [agent, at, options]);
    const keys = [
      `${agent.issuer}|${agent.id}`,
      ...(options.tenant === undefined ? [] : [`${agent.issuer}|${agent.id}|${options.tenant}`]),
    ];
    for (const key of keys) {
      const known = this.agents.get(key);
      this.agents.set(key, {
        issuer: agent.issuer,
        id: agent.id,
        zone: agent.zone,
        firstSeen: known?.firstSeen ?? at.toISOString(),
        lastSeen: at.toISOString(),
        totalTasks: (known?.totalTasks ?? 0) + (options.countTask === false ? 0 : 1),
      });
    }
  }
}

/**
 * {@link RateLimiter}: the DynamoDB adapter's token bucket (GCRA on `nextTokenAt`), one per agent
 * and bucket, on the injected clock. `consumed` lists each granted token with its bucket.
 */
export class MemoryRateLimiter extends Fake<"consume"> implements RateLimiter {
  readonly consumed: { readonly agent: AgentRef; readonly bucket: RateBucket }[] = [];
  readonly #capacity: number;
  readonly #intervalMs: number;
  readonly #nextTokenAt = new Map<string, number>();

  constructor(options: FakeOptions & { capacity?: number; refillPerSecond?: number } = {}) {
    super("rateLimiter", options);
    this.#capacity = options.capacity ?? DEFAULT_VEND_RATE.capacity;
    this.#intervalMs = 1000 / (options.refillPerSecond ?? DEFAULT_VEND_RATE.refillPerSecond);
  }

  async consume(agent: AgentRef, bucket?: RateBucket): Promise<void> {
    this.enter("consume", bucket === undefined ? [agent] : [agent, bucket]);
    this.reserve(agent, bucket ?? "vend")();
  }

  /**
   * Checks that the bucket has a token, without taking it: the returned function takes it. (The
   * task repository fake takes a vend's token this way, with the rest of its create.)
   * @throws RateLimitedError when the bucket is empty
   */
  reserve(agent: AgentRef, bucket: RateBucket): () => void {
    const key = `${agent.issuer}|${agent.id}|${bucket}`;
    const now = this.now().getTime();
    const next = this.#nextTokenAt.get(key);
    const limit = now + (this.#capacity - 1) * this.#intervalMs;
    if (next !== undefined && next > limit) {
      throw new RateLimitedError(
        `too many ${bucket === "vend" ? "vends" : "credential refreshes"} by this agent, slow down`,
        Math.max(1, Math.ceil((next - limit) / 1000)),
      );
    }
    return () => {
      this.#nextTokenAt.set(
        key,
        next === undefined || next <= now ? now + this.#intervalMs : next + this.#intervalMs,
      );
      this.consumed.push({ agent: { issuer: agent.issuer, id: agent.id }, bucket });
    };
  }
}

/**
 * {@link LifecycleStarter}: one execution per task id (a second start of the same task is a
 * no-op, as Step Functions' `ExecutionAlreadyExists`), with the input the adapter would send.
 */
export class MemoryLifecycle extends Fake<"start"> implements LifecycleStarter {
  readonly executions = new Map<string, LifecycleInput>();

  constructor(options: FakeOptions = {}) {
    super("lifecycle", options);
  }

  async start(task: Pick<Task, "taskId" | "expiresAt" | "status">): Promise<void> {
    const gate = this.held("start");
    if (gate) await gate;
    this.enter("start", [task]);
    if (!this.executions.has(task.taskId)) {
      this.executions.set(task.taskId, lifecycleInput(task, this.now()));
    }
  }
}

/** {@link TaskTokenSender}: `signals` lists each token and signal sent. */
export class MemoryTaskTokens extends Fake<"sendSuccess"> implements TaskTokenSender {
  readonly signals: { readonly taskToken: string; readonly output: LifecycleSignal }[] = [];

  constructor(options: FakeOptions = {}) {
    super("tokens", options);
  }

  async sendSuccess(taskToken: string, output: LifecycleSignal): Promise<void> {
    this.enter("sendSuccess", [taskToken, output]);
    this.signals.push({ taskToken, output });
  }
}

/** {@link ApprovalNotifier}: `notified` lists each pending task and its quorum. */
export class MemoryNotifier extends Fake<"pendingApproval"> implements ApprovalNotifier {
  readonly notified: { readonly task: Task; readonly quorum: number }[] = [];

  constructor(options: FakeOptions = {}) {
    super("notifier", options);
  }

  async pendingApproval(task: Task, quorum: number): Promise<void> {
    this.enter("pendingApproval", [task, quorum]);
    this.notified.push({ task: structuredClone(task), quorum });
  }
}

/**
 * {@link CredentialBroker} that checks each request against STS's limits (as `StsBroker` does
 * before calling STS), records it, and returns predictable fake credentials expiring
 * `durationSeconds` from now: `ASIAFAKE…0001`, `…0002`, ….
 */
export class MemoryCredentialBroker extends Fake<"assumeRole"> implements CredentialBroker {
  /** Every accepted request, oldest first. */
  readonly requests: AssumeRoleRequest[] = [];
  /** Every credential returned, oldest first. */
  readonly issued: IssuedCredentials[] = [];

  constructor(options: FakeOptions = {}) {
    super("broker", options);
  }

  async assumeRole(request: AssumeRoleRequest): Promise<IssuedCredentials> {
    const gate = this.held("assumeRole");
    if (gate) await gate;
    this.enter("assumeRole", [request]);
    assertStsLimits(request);
    this.requests.push(structuredClone(request));
    const n = String(this.issued.length + 1).padStart(12, "0");
    const credentials: IssuedCredentials = {
      AccessKeyId: `ASIAFAKE${n}`,
      SecretAccessKey: `fake-secret-${n}`,
      SessionToken: `fake-session-${request.roleSessionName}-${n}`,
      Expiration: new Date(this.now().getTime() + request.durationSeconds * 1000).toISOString(),
    };
    this.issued.push(credentials);
    return credentials;
  }
}

function holdsSlot(status: TaskStatus): boolean {
  return status === "active" || status === "pending_approval";
}

function slotKey(template: string, agent: AgentRef): string {
  return JSON.stringify([template, agent.issuer, agent.id]);
}

function idempotencyKeyOf(agent: AgentRef, key: string): string {
  return JSON.stringify([agent.issuer, agent.id, key]);
}

function toEpochSeconds(time: string): number {
  return Math.ceil(Date.parse(time) / 1000);
}

/** The TTL backstop's view of the lifecycle, recording what it is asked to do (failing for `failOn`). */
export function recordingBackstopLifecycle(failOn?: string): { lifecycle: TaskLifecycle; calls: string[] } {
  const calls: string[] = [];
  const lifecycle = {
    backstop: async ({ taskId }: { taskId: string }) => {
      if (taskId === failOn) throw new Error("IAM unavailable");
      calls.push(`backstop ${taskId}`);
    },
    prune: async ({ roleArn, taskId }: { roleArn: string; taskId: string }) => {
      calls.push(`prune ${roleArn} ${taskId}`);
    },
  } as unknown as TaskLifecycle;
  return { lifecycle, calls };
}
