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
}

export interface Decision {
  readonly allowed: boolean;
  /** Safe to show the caller, e.g. "agent is not in the template's agents list". */
  readonly reason: string;
  /** Policies that determined the decision, for the audit trail. */
  readonly policies: readonly string[];
}

/** Port: may this agent (for this user) use this template now? */
export interface Authorizer {
  authorizeVend(request: VendDecisionRequest): Promise<Decision>;
}
