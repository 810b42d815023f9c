import { type AuditLog, taskAuditFields } from "../audit/audit-log.js";
import type { Authorizer, CedarResource } from "../authz/authorizer.js";
import type { StaffRoles } from "../authz/roles.js";
import type { CedarAction } from "../authz/schema.js";
import { ForbiddenError } from "../domain/errors.js";
import type { VerifiedIdentity } from "../domain/identity.js";

/**
 * Asks the one Cedar engine, after a service's own code checks passed (so the contract's
 * 404/409 come first). A deny is audited (`access.denied`, naming the policies) and answered
 * `403` with the decision's reason.
 */
export class AccessControl {
  readonly #authorizer: Authorizer;
  readonly #roles: StaffRoles;
  readonly #audit: AuditLog;

  constructor(deps: { authorizer: Authorizer; roles: StaffRoles; audit: AuditLog }) {
    this.#authorizer = deps.authorizer;
    this.#roles = deps.roles;
    this.#audit = deps.audit;
  }

  /** @throws ForbiddenError naming the deciding policies when Cedar denies */
  async require(
    action: CedarAction,
    caller: VerifiedIdentity,
    resource: CedarResource,
    requestId: string | undefined,
  ): Promise<void> {
    const decision = await this.#authorizer.authorize(
      action,
      { identity: caller, roles: this.#roles.rolesOf(caller) },
      resource,
    );
    if (decision.allowed) return;
    this.#audit.record({
      event: "access.denied",
      requestId,
      action,
      ...(resource.kind === "task" ? taskAuditFields(resource.task) : {}),
      zone: resource.kind === "zone" ? resource.zone : undefined,
      caller: { issuer: caller.issuer, id: caller.id, kind: caller.kind },
      reason: decision.reason,
      policies: decision.policies,
      ...(decision.policyVersion === undefined ? {} : { policyVersion: decision.policyVersion }),
    });
    throw new ForbiddenError(decision.reason);
  }
}
