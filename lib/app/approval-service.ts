import { type AuditLog, taskAuditFields } from "../audit/audit-log.js";
import type { StaffRoles } from "../authz/roles.js";
import { ConflictError, ForbiddenError, NotFoundError } from "../domain/errors.js";
import type { VerifiedIdentity } from "../domain/identity.js";
import { isTaskId } from "../domain/ids.js";
import { effectiveStatus, type Task } from "../domain/task.js";
import type { ApprovalStore } from "../tasks/approval-store.js";
import type { TaskTokenSender } from "../tasks/lifecycle.js";
import type { TaskRepository } from "../tasks/repository.js";
import type { TemplateStore } from "../tasks/template-store.js";
import type { AccessControl } from "./access.js";

export interface ApprovalServiceDeps {
  readonly tasks: TaskRepository;
  readonly templates: TemplateStore;
  readonly approvals: ApprovalStore;
  readonly tokens: TaskTokenSender;
  readonly roles: StaffRoles;
  readonly access: AccessControl;
  readonly audit: AuditLog;
  readonly now?: () => Date;
}

/** The answer of `approve` / `deny`. */
export interface ApprovalResult {
  readonly taskId: string;
  readonly status: Task["status"];
  readonly approvals: number;
}

/**
 * Approval gates (CONTRACT.md section 3, `approve` / `deny`): approvers of the task's zone (and,
 * customer zone, tenant), never the agent or the user it acts for; `quorum` distinct approvers
 * activate the task, whose life starts then. The code's checks answer first (403 for a
 * non-approver, 404 for a task beyond its reach, 409 for one no longer pending), then Cedar's
 * `Approve`.
 */
export class ApprovalService {
  readonly #d: ApprovalServiceDeps;
  readonly #now: () => Date;

  constructor(deps: ApprovalServiceDeps) {
    this.#d = deps;
    this.#now = deps.now ?? (() => new Date());
  }

  /** `POST /v1/tasks/{id}/approve`: one approver's approval; the quorum-th activates the task. */
  async approve(caller: VerifiedIdentity, taskId: string, requestId?: string): Promise<ApprovalResult> {
    const task = await this.#pendingForApprover(caller, taskId, requestId);
    const template = await this.#d.templates.get(task.template);
    const quorum = template?.approval.quorum ?? 1;
    const approvals = await this.#d.approvals.recordApproval(task.taskId, approverKey(caller));
    if (!approvals) throw new ConflictError("already approved by this approver, or no longer pending");
    this.#audit("approval.recorded", task, requestId, {
      approver: caller.id,
      approvals: approvals.length,
      quorum,
    });
    if (approvals.length < quorum) {
      return { taskId: task.taskId, status: "pending_approval", approvals: approvals.length };
    }
    const ttlSeconds = task.ttlSeconds ?? template?.ttl.defaultSeconds ?? 900;
    const expiresAt = new Date(this.#now().getTime() + ttlSeconds * 1000).toISOString();
    const active = await this.#d.approvals.activate(task, expiresAt);
    if (active) {
      this.#audit("task.approved", active, requestId, { approvals: approvals.length });
      if (active.approvalToken) {
        await this.#d.tokens
          .sendSuccess(active.approvalToken, { decision: "approved", timeoutSeconds: ttlSeconds })
          .catch(() => this.#audit("lifecycle.signal_failed", active, requestId));
      }
    }
    const current = await this.#d.tasks.get(task.taskId);
    return { taskId: task.taskId, status: current?.status ?? "active", approvals: approvals.length };
  }

  /** `POST /v1/tasks/{id}/deny`: an approver refuses; the task is `denied` and never yields credentials. */
  async deny(
    caller: VerifiedIdentity,
    taskId: string,
    reason: string | undefined,
    requestId?: string,
  ): Promise<ApprovalResult> {
    const task = await this.#pendingForApprover(caller, taskId, requestId);
    const denied = await this.#d.tasks.transition(
      task.taskId,
      ["pending_approval"],
      "denied",
      reason ?? "approval refused",
    );
    if (!denied) throw new ConflictError("the task is no longer pending approval");
    this.#audit("task.denied", denied, requestId, { approver: caller.id, reason: denied.reason });
    if (denied.approvalToken) {
      await this.#d.tokens
        .sendSuccess(denied.approvalToken, { decision: "denied" })
        .catch(() => this.#audit("lifecycle.signal_failed", denied, requestId));
    }
    return { taskId: task.taskId, status: "denied", approvals: denied.approvals?.length ?? 0 };
  }

  /** The pending task an approver may decide on: the code's checks first, then Cedar's `Approve`. */
  async #pendingForApprover(caller: VerifiedIdentity, taskId: string, requestId?: string): Promise<Task> {
    const { roles } = this.#d;
    if (!roles.isApprover(caller)) throw new ForbiddenError("only approvers may decide on tasks");
    const task = isTaskId(taskId) ? await this.#d.tasks.get(taskId) : undefined;
    if (!task) throw new NotFoundError("unknown task");
    if (!roles.mayApprove(caller, task)) {
      // A task the caller cannot even read is unknown to it; one it administers is only not theirs to approve.
      if (!roles.administers(caller, task)) throw new NotFoundError("unknown task");
      throw new ForbiddenError(
        "approvers decide only on tasks of their own zone (and, customer zone, tenant)",
      );
    }
    const self =
      (caller.issuer === task.agent.issuer && caller.id === task.agent.id) ||
      (task.onBehalfOf !== undefined &&
        caller.issuer === task.onBehalfOf.issuer &&
        caller.id === task.onBehalfOf.user);
    if (self) throw new ForbiddenError("the agent and the user it acts for cannot approve their own task");
    const status = effectiveStatus(task, this.#now());
    if (status !== "pending_approval") throw new ConflictError(`the task is ${status}`);
    await this.#d.access.require("Approve", caller, { kind: "task", task: { ...task, status } }, requestId);
    return task;
  }

  #audit(event: Parameters<AuditLog["record"]>[0]["event"], task: Task, requestId?: string, extra = {}) {
    this.#d.audit.record({ event, requestId, ...taskAuditFields(task), ...extra });
  }
}

function approverKey(identity: VerifiedIdentity): string {
  return `${identity.issuer}|${identity.id}`;
}
