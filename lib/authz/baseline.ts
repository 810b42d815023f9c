import { loadPolicySet, type ParsedPolicy } from "./cedar-policy-set.js";

/** Name under which the built-in policies appear in audit trails and clash messages. */
export const BASELINE_POLICY_SET_NAME = "built-in baseline";

/**
 * The built-in baseline policies of every jitv deployment, loaded by the authorizer before any
 * stored policy set, so a deployment with no stored policy still works. Stored sets may add
 * forbids (which always win) and permits; their `@id`s may not reuse these.
 *
 * Vends are permitted by each template's `agents` list, which jitv compiles into a policy
 * `template:<name>:agents` at decision time; the policies here add the trust-zone boundary (which
 * only the workforce zone's admins cross, to read, list and revoke), the tenant boundary of
 * customer-zone staff (`context.tenant` is the task's tenant, or the tenant a listing is scoped
 * to) and who may act on tasks once they exist. They are forbids, so no stored permit widens them. A forbid's `@reason` is shown to the caller it refuses,
 * so keep it free of anything secret.
 */
export const BASELINE_POLICIES = `@id("zone-boundary")
@reason("a token from one trust zone has no power in the other")
forbid (principal, action, resource)
unless {
  principal.zone == context.zone ||
  (principal.zone == "workforce" &&
   principal in Jitv::Role::"admin" &&
   action in [
     Jitv::Action::"ReadTask",
     Jitv::Action::"Revoke",
     Jitv::Action::"ListTasks",
     Jitv::Action::"ListAgents"
   ])
};

@id("customer-tenant-boundary")
@reason("customer-zone staff act only within their own tenant")
forbid (principal is Jitv::User, action, resource)
when { principal.zone == "customer" }
unless { principal has tenant && context has tenant && context.tenant == principal.tenant };

@id("owner-agent-task-actions")
permit (
  principal is Jitv::Agent,
  action in [Jitv::Action::"Refresh", Jitv::Action::"Complete", Jitv::Action::"ReadTask"],
  resource is Jitv::Task
)
when { resource.agent == principal };

@id("zone-admins")
permit (
  principal in Jitv::Role::"admin",
  action in [
    Jitv::Action::"ReadTask",
    Jitv::Action::"Revoke",
    Jitv::Action::"ListTasks",
    Jitv::Action::"ListAgents"
  ],
  resource
);

@id("zone-approvers")
permit (principal in Jitv::Role::"approver", action == Jitv::Action::"Approve", resource is Jitv::Task)
when { resource.status == "pending_approval" };

@id("no-self-approval")
@reason("the user a task acts for cannot approve it")
forbid (principal is Jitv::User, action == Jitv::Action::"Approve", resource)
when { context has user && context.user == principal.id };
`;

let parsed: readonly ParsedPolicy[] | undefined;

/** The built-in baseline policies, parsed once. */
export function baselinePolicies(): readonly ParsedPolicy[] {
  parsed ??= loadPolicySet(BASELINE_POLICIES);
  return parsed;
}
