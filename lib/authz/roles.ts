import type { RoleRule, VerifiedIdentity } from "../domain/identity.js";
import type { Task } from "../domain/task.js";

/**
 * The staff roles the issuers file grants (`admins`, `approvers`) and how far each reaches
 * (CONTRACT.md section 2): a workforce admin every zone; a workforce approver workforce tasks;
 * customer-zone staff only the delegated tasks of the tenant named in their own token. The
 * built-in Cedar baseline enforces the same boundaries again (`zone-boundary`,
 * `customer-tenant-boundary`), so a stored policy cannot widen them.
 *
 * @example
 * const roles = new StaffRoles(config.admins, config.approvers);
 * if (!roles.administers(caller, task)) throw new NotFoundError("unknown task");
 */
export class StaffRoles {
  readonly #admins: readonly RoleRule[];
  readonly #approvers: readonly RoleRule[];

  constructor(admins: readonly RoleRule[] = [], approvers: readonly RoleRule[] = []) {
    this.#admins = admins;
    this.#approvers = approvers;
  }

  /** An admin by the `admins` rules (of some reach: see {@link StaffRoles.administers}). */
  isAdmin(identity: VerifiedIdentity): boolean {
    return matchesRole(identity, this.#admins);
  }

  /** An approver by the `approvers` rules (of some reach: see {@link StaffRoles.mayApprove}). */
  isApprover(identity: VerifiedIdentity): boolean {
    return matchesRole(identity, this.#approvers);
  }

  /** An admin whose reach covers `task`: a workforce admin every task, a customer-zone admin its tenant's. */
  administers(identity: VerifiedIdentity, task: Task): boolean {
    return this.isAdmin(identity) && reaches(identity, task, true);
  }

  /** An approver whose reach covers `task` (approvers never cross zones). */
  mayApprove(identity: VerifiedIdentity, task: Task): boolean {
    return this.isApprover(identity) && reaches(identity, task, false);
  }

  /** The `Jitv::Role`s an identity is in, for Cedar: `admin`, `approver`. */
  rolesOf(identity: VerifiedIdentity): string[] {
    return [...(this.isAdmin(identity) ? ["admin"] : []), ...(this.isApprover(identity) ? ["approver"] : [])];
  }
}

/** True when the identity's token comes from a rule's `issuer` and its `claim` holds one of the rule's `values`. */
export function matchesRole(identity: VerifiedIdentity, rules: readonly RoleRule[] | undefined): boolean {
  return (rules ?? []).some((rule) => {
    if (identity.issuer !== rule.issuer) return false;
    const claim = identity.claims[rule.claim];
    const values = Array.isArray(claim) ? claim : [claim];
    return values.some((v) => typeof v === "string" && rule.values.includes(v));
  });
}

/**
 * Whether a staff identity's zone (and, customer zone, tenant) reaches `task`. Workforce staff
 * reach workforce tasks, and every task when `crossZones` (admins); customer-zone staff only
 * delegated tasks of the tenant named in their own token.
 */
function reaches(identity: VerifiedIdentity, task: Task, crossZones: boolean): boolean {
  if (identity.zone === "workforce") return crossZones || task.zone === "workforce";
  return (
    task.zone === "customer" && identity.tenant !== undefined && task.onBehalfOf?.tenant === identity.tenant
  );
}
