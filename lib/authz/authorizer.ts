import type { VerifiedIdentity } from "../domain/identity.js";
import type { TaskTemplate } from "../domain/template.js";

export interface VendDecisionRequest {
  readonly agent: VerifiedIdentity;
  readonly template: TaskTemplate;
  /** The verified user a delegated (customer-zone) task acts for. */
  readonly subject?: VerifiedIdentity;
  readonly purpose?: string;
  readonly ttlSeconds: number;
  readonly parameters: Readonly<Record<string, string>>;
  /** The caller's IP address (`context.sourceIp` in Cedar), when the edge knows it. */
  readonly sourceIp?: string;
  /** Whether the task's approval gate is satisfied (`context.approved`). @default false */
  readonly approved?: boolean;
  /** Distinct approvals so far (`context.approvals`). @default 0 */
  readonly approvals?: number;
}

export interface Decision {
  readonly allowed: boolean;
  /** Safe to show the caller, e.g. "agent is not in the template's agents list". */
  readonly reason: string;
  /** Policies that determined the decision, for the audit trail. */
  readonly policies: readonly string[];
  /** Version of the policy set that decided, when the authorizer has one (for the audit trail). */
  readonly policyVersion?: string;
}

/** Port: may this agent (for this user) use this template now? */
export interface Authorizer {
  authorizeVend(request: VendDecisionRequest): Promise<Decision>;
}
