import { type AuditLog, taskAuditFields } from "../audit/audit-log.js";
import { effectiveStatus, type Task } from "../domain/task.js";
import type { DriftSettings } from "../domain/template.js";
import { signalTaskEnded, type TaskTokenSender } from "../tasks/lifecycle.js";
import type { TaskRepository } from "../tasks/repository.js";
import type { TemplateStore } from "../tasks/template-store.js";
import { iamActionOf, isAccessDenied, type TaskCall, taskCallOf } from "./cloudtrail.js";
import type { DriftCounters } from "./counters.js";
import type { DriftNotifier, DriftOutcome } from "./notifier.js";
import {
  burstFinding,
  type DriftFinding,
  driftSettingsOf,
  isTaskSession,
  offPolicyFinding,
  sourceIpFinding,
} from "./rules.js";

/** Who revoked, in the `task.revoked` audit event (`revokedBy`), where an admin revoke names the admin. */
export const DRIFT_REVOKER = "jitv:drift";

/**
 * How long a seen marker outlives its handling: longer than EventBridge retries a delivery
 * (24 hours), so a redelivered event is always recognised.
 */
const SEEN_SECONDS = 48 * 3600;
/** How late an AccessDenied call may be delivered and still be counted with its window. */
const DELIVERY_GRACE_SECONDS = 3600;
/** An admin revoke's reason is at most this long (`POST /v1/tasks/{id}/revoke`); so is drift's. */
const REASON_MAX_LENGTH = 256;

export interface DriftDetectorDeps {
  readonly tasks: TaskRepository;
  readonly templates: TemplateStore;
  readonly counters: DriftCounters;
  /** Signals the task's lifecycle execution, which then denies its sessions on its role. */
  readonly tokens: TaskTokenSender;
  readonly notifier: DriftNotifier;
  readonly audit: AuditLog;
  readonly now?: () => Date;
}

/** What one batch of records led to (the sandbox route returns it). */
export interface DriftReport {
  /** Records of jitv task sessions handled now (not seen before). */
  readonly handled: number;
  /** Records already handled before (redeliveries). */
  readonly duplicates: number;
  /** Records of no jitv task session (other principals, service events, unknown tasks). */
  readonly ignored: number;
  readonly findings: readonly {
    readonly taskId: string;
    readonly rule: DriftFinding["rule"];
    readonly detail: string;
    /** `revoked` by this record, `audited` only, or `already-ended` (a concurrent finding or an admin was first). */
    readonly outcome: DriftOutcome | "already-ended";
  }[];
}

/**
 * The drift detector (CONTRACT.md section 9), shared by the `drift` Lambda (one EventBridge event
 * per invocation) and the sandbox's `POST /v1/sandbox/cloudtrail`. For each CloudTrail record of
 * an active task's session it applies the rules of `rules.ts` with the task's template settings;
 * a finding that revokes ends the task exactly as an admin revoke does (the same conditional
 * transition to `revoked`, the same `task.revoked` audit event, the same signal to the task's
 * lifecycle execution, which then denies the task's sessions on its role), with reason
 * `drift: <rule>: <detail>`; every finding is audited (`drift.detected`, with event ids and
 * actions) and notified.
 *
 * Idempotent per CloudTrail `eventID` (a seen marker, forgotten again when handling fails so the
 * retry is not lost), and a flood of records revokes once: only the first conditional transition
 * succeeds, every later finding is `already-ended`, and records of an ended task are not judged.
 */
export class DriftDetector {
  readonly #d: DriftDetectorDeps;
  readonly #now: () => Date;

  constructor(deps: DriftDetectorDeps) {
    this.#d = deps;
    this.#now = deps.now ?? (() => new Date());
  }

  /**
   * Handles CloudTrail records in order.
   * @throws UpstreamUnavailableError when DynamoDB fails (records before it stay handled)
   */
  async handle(records: readonly unknown[]): Promise<DriftReport> {
    const report = {
      handled: 0,
      duplicates: 0,
      ignored: 0,
      findings: [] as DriftReport["findings"][number][],
    };
    for (const record of records) {
      const call = taskCallOf(record);
      if (call === undefined) {
        report.ignored++;
        continue;
      }
      const seenUntil = new Date(this.#now().getTime() + SEEN_SECONDS * 1000);
      if (!(await this.#d.counters.markSeen(call.eventId, seenUntil))) {
        report.duplicates++;
        continue;
      }
      try {
        const findings = await this.#judge(call);
        if (findings === undefined) report.ignored++;
        else {
          report.handled++;
          report.findings.push(...findings);
        }
      } catch (error) {
        await this.#d.counters.forgetSeen(call.eventId).catch(() => undefined);
        throw error;
      }
    }
    return report;
  }

  /** The findings of one call, acted upon; `undefined` when the call is no active task's. */
  async #judge(call: TaskCall): Promise<DriftReport["findings"] | undefined> {
    const task = await this.#d.tasks.get(call.taskId);
    if (task === undefined || !isTaskSession(call, task)) return undefined;
    if (effectiveStatus(task, this.#now()) !== "active") return [];
    const settings = driftSettingsOf(await this.#d.templates.get(task.template));

    const findings: DriftFinding[] = [];
    const ip = sourceIpFinding(call, settings);
    if (ip) findings.push(ip);
    const offPolicy = await offPolicyFinding(call, task, settings);
    if (offPolicy) findings.push(offPolicy);
    if (isAccessDenied(call)) {
      const burst = await this.#burst(call, settings);
      if (burst) findings.push(burst);
    }

    const results: DriftReport["findings"][number][] = [];
    let revoked = false;
    for (const finding of findings) {
      let outcome: DriftReport["findings"][number]["outcome"] = "audited";
      // One call revokes once; its other findings are evidence of the same revocation.
      if (finding.response === "revoke") outcome = revoked ? "revoked" : await this.#revoke(task, finding);
      if (outcome === "revoked") revoked = true;
      if (outcome !== "already-ended") await this.#report(task, finding, outcome);
      results.push({ taskId: task.taskId, rule: finding.rule, detail: finding.detail, outcome });
    }
    return results;
  }

  /** Records an AccessDenied call and judges the task's AccessDenied calls around it. */
  async #burst(call: TaskCall, settings: DriftSettings): Promise<DriftFinding | undefined> {
    const at = Date.parse(call.eventTime);
    const span = settings.accessDeniedBurst.windowSeconds * 1000;
    const self = { eventId: call.eventId, eventTime: call.eventTime, action: iamActionOf(call) };
    const until = new Date(Math.max(at, this.#now().getTime()) + span + DELIVERY_GRACE_SECONDS * 1000);
    const denied = await this.#d.counters.recordDenied(
      call.taskId,
      self,
      { from: new Date(at - span).toISOString(), to: new Date(at + span).toISOString() },
      until,
    );
    return burstFinding(self, denied, settings);
  }

  /** Ends the task as an admin revoke does; `already-ended` when something else ended it first. */
  async #revoke(task: Task, finding: DriftFinding): Promise<"revoked" | "already-ended"> {
    const reason = truncate(`drift: ${finding.rule}: ${finding.detail}`, REASON_MAX_LENGTH);
    const ended = await this.#d.tasks.transition(
      task.taskId,
      ["active", "pending_approval"],
      "revoked",
      reason,
    );
    if (!ended) return "already-ended";
    this.#d.audit.record({
      event: "task.revoked",
      ...taskAuditFields(ended),
      reason,
      revokedBy: DRIFT_REVOKER,
      eventIds: finding.eventIds,
      actions: finding.actions,
    });
    if (!(await signalTaskEnded(this.#d.tokens, ended, "revoked"))) {
      this.#d.audit.record({ event: "lifecycle.signal_failed", taskId: ended.taskId });
    }
    return "revoked";
  }

  /** Audits a finding with its evidence and notifies it; a failed notification is audited, never fatal. */
  async #report(task: Task, finding: DriftFinding, outcome: DriftOutcome): Promise<void> {
    const notified = await this.#d.notifier.driftDetected(task, finding, outcome).then(
      () => true,
      () => false,
    );
    this.#d.audit.record({
      event: "drift.detected",
      ...taskAuditFields(task),
      rule: finding.rule,
      reason: finding.detail,
      outcome,
      eventIds: finding.eventIds,
      actions: finding.actions,
      notified,
    });
  }
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
