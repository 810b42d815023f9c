import { type AuditLog, taskAuditFields } from "../audit/audit-log.js";
import type { Metrics } from "../audit/metrics.js";
import { NotFoundError } from "../domain/errors.js";
import type { Task, TaskOutcome } from "../domain/task.js";
import type { RevocationStore } from "../revocation/revocation-store.js";
import { SecretNotFoundError, type SecretRotator } from "../secrets/secret-rotator.js";
import { secondsUntil, type TaskTokenSender } from "../tasks/lifecycle.js";
import type { TaskRepository } from "../tasks/repository.js";
import type { TemplateStore } from "../tasks/template-store.js";

export interface TaskLifecycleDeps {
  readonly tasks: TaskRepository;
  readonly templates: TemplateStore;
  readonly revocations: RevocationStore;
  readonly rotator: SecretRotator;
  readonly tokens: TaskTokenSender;
  readonly audit: AuditLog;
  readonly metrics: Metrics;
  readonly now?: () => Date;
}

const ENDED_BY_CALLER: Readonly<Record<string, TaskOutcome>> = { completed: "completed", revoked: "revoked" };

/**
 * The steps of a task's life after vending, shared by the state machine's Lambdas, the
 * sandbox's in-process run of the same ASL, and the TTL-stream backstop. Every step is
 * idempotent: it may run twice (retries, backstop after the state machine) with one effect.
 */
export class TaskLifecycle {
  readonly #d: TaskLifecycleDeps;
  readonly #now: () => Date;

  constructor(deps: TaskLifecycleDeps) {
    this.#d = deps;
    this.#now = deps.now ?? (() => new Date());
  }

  /**
   * `WaitForTaskEnd`: stores the execution's task token on the task. A task that already
   * ended (completed or revoked before the token arrived) is answered at once.
   */
  async registerToken(input: { taskId: string; taskToken: string }): Promise<void> {
    await this.#d.tasks.mark(input.taskId, { taskToken: input.taskToken });
    const task = await this.#task(input.taskId);
    const outcome = ENDED_BY_CALLER[task.status];
    if (outcome) await this.#d.tokens.sendSuccess(input.taskToken, { outcome });
    else if (task.status === "failed" || task.status === "denied") {
      // Nothing was issued, but revoking is harmless and closes the lifecycle the same way.
      await this.#d.tokens.sendSuccess(input.taskToken, { outcome: "revoked" });
    }
  }

  /**
   * `WaitForApproval`: stores the approval token on the task. A task already approved or
   * refused (the decision raced the registration) is answered at once.
   */
  async registerApprovalToken(input: { taskId: string; taskToken: string }): Promise<void> {
    await this.#d.tasks.mark(input.taskId, { approvalToken: input.taskToken });
    const task = await this.#task(input.taskId);
    if (task.status === "active") {
      const timeoutSeconds = secondsUntil(task.expiresAt, this.#now());
      await this.#d.tokens.sendSuccess(input.taskToken, { decision: "approved", timeoutSeconds });
    } else if (task.status !== "pending_approval") {
      await this.#d.tokens.sendSuccess(input.taskToken, { decision: "denied" });
    }
  }

  /** `ApprovalRefused`: the approvers refused, or nobody decided in time; nothing was issued. */
  async approvalRefused(input: { taskId: string; decision: string }): Promise<void> {
    const reason = input.decision === "timed_out" ? "approval timed out" : "approval refused";
    const denied = await this.#d.tasks.transition(input.taskId, ["pending_approval"], "denied", reason);
    if (denied) this.#audit("task.denied", denied, { reason });
  }

  /** `Revoke`: ends the task (if still active) with the outcome and denies its sessions on its role. */
  async revoke(input: { taskId: string; outcome: TaskOutcome }): Promise<void> {
    let task = await this.#task(input.taskId);
    if (input.outcome === "expired") {
      const ended = await this.#d.tasks.transition(task.taskId, ["active"], "expired");
      const denied =
        !ended &&
        (await this.#d.tasks.transition(task.taskId, ["pending_approval"], "denied", "approval timed out"));
      if (ended) this.#audit("task.expired", ended);
      if (denied) this.#audit("task.denied", denied, { reason: "approval timed out" });
      task = ended || denied || task;
    }
    await this.#d.revocations.revoke({
      roleArn: task.roleArn,
      taskId: task.taskId,
      // Every credential handed out was recorded while the task was active (recordIssue's
      // condition), so this is the expiry of the last credential that can exist.
      credentialsExpireAt: task.lastCredentialExpiry ?? this.#now().toISOString(),
    });
    if (!task.revokedAt) await this.#d.tasks.mark(task.taskId, { revokedAt: this.#now().toISOString() });
  }

  /** `RotateSecrets`: rotates the template's `rotateOnEnd` secrets, once per task. */
  async rotateSecrets(input: { taskId: string }): Promise<void> {
    const task = await this.#task(input.taskId);
    if (task.secretsRotatedAt) return;
    const template = await this.#d.templates.get(task.template);
    for (const secret of template?.secrets ?? []) {
      if (!secret.rotateOnEnd) continue;
      try {
        await this.#d.rotator.rotate(secret.arn);
        this.#audit("secret.rotated", task, { secret: secret.arn });
      } catch (err) {
        // A deleted secret cannot be rotated, and retrying will not bring it back.
        if (!(err instanceof SecretNotFoundError)) throw err;
        this.#audit("secret.rotation_skipped", task, { secret: secret.arn, reason: "secret not found" });
      }
    }
    await this.#d.tasks.mark(task.taskId, { secretsRotatedAt: this.#now().toISOString() });
  }

  /** `CloseTask`: records that the lifecycle is done with the task. */
  async close(input: { taskId: string }): Promise<void> {
    const task = await this.#task(input.taskId);
    if (task.closedAt) return;
    await this.#d.tasks.mark(task.taskId, { closedAt: this.#now().toISOString() });
    this.#audit("task.closed", task);
  }

  /** `LifecycleFailed`: revocation, rotation or closing failed after every retry. */
  async lifecycleFailed(input: { taskId: string; error?: string }): Promise<void> {
    const task = await this.#task(input.taskId);
    const reason = `lifecycle step failed after retries: ${input.error ?? "unknown error"}`;
    await this.#d.tasks.transition(
      task.taskId,
      ["active", "pending_approval", "completed", "revoked", "expired", "failed", "denied"],
      "revocation_failed",
      reason,
    );
    this.#d.metrics.count("RevocationFailed");
    this.#audit("task.revocation_failed", task, { reason });
  }

  /**
   * The TTL backstop for a task lease: whatever the state machine did, the task ends up
   * ended, revoked, its secrets rotated and closed. Safe to run after a clean lifecycle.
   */
  async backstop(input: { taskId: string }): Promise<void> {
    const task = await this.#d.tasks.get(input.taskId);
    if (!task) return;
    if (task.closedAt && task.revokedAt && task.secretsRotatedAt) return;
    this.#d.metrics.count("TaskExpiredByBackstop");
    await this.revoke({ taskId: task.taskId, outcome: "expired" });
    await this.rotateSecrets({ taskId: task.taskId });
    await this.close({ taskId: task.taskId });
  }

  /** The TTL backstop for a prune lease: every credential of the task has expired. */
  async prune(input: { roleArn: string; taskId: string }): Promise<void> {
    if (await this.#d.revocations.prune(input.roleArn, input.taskId)) {
      this.#d.audit.record({ event: "revocation.pruned", taskId: input.taskId, roleArn: input.roleArn });
    }
  }

  async #task(taskId: string): Promise<Task> {
    const task = await this.#d.tasks.get(taskId);
    if (!task) throw new NotFoundError("unknown task");
    return task;
  }

  #audit(event: Parameters<AuditLog["record"]>[0]["event"], task: Task, extra: Record<string, unknown> = {}) {
    this.#d.audit.record({ event, ...taskAuditFields(task), ...extra });
  }
}
