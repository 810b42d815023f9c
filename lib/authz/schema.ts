/**
 * The Cedar schema of jitv (namespace `Jitv`): what policies may talk about. Every stored policy
 * set is validated against it in strict mode before it is written, and every request the
 * {@link https://www.cedarpolicy.com Cedar} engine decides is checked against it too.
 *
 * Entities (ids in brackets):
 *
 * | type              | id                     | attributes / parents                                       |
 * | ----------------- | ---------------------- | ---------------------------------------------------------- |
 * | `Jitv::Zone`      | `workforce`/`customer` | enumerated; every agent, user, template and task is in its zone |
 * | `Jitv::Role`      | e.g. `admin`           | a role the deployment grants (admins, approvers); principals are in theirs |
 * | `Jitv::Tenant`    | the tenant claim       | a delegated user is in their tenant                         |
 * | `Jitv::Agent`     | `<issuer>\|<id>`       | `issuer`, `zone`, `id`, `groups`; in its `Zone` and `Role`s  |
 * | `Jitv::User`      | `<issuer>\|<id>`       | `issuer`, `zone`, `id`, `tenant?`, `groups`; in `Zone`, `Role`s, `Tenant` |
 * | `Jitv::Template`  | template name          | `zone`, `name`, `roleArn`, `approvalRequired`; in its `Zone` |
 * | `Jitv::Task`      | task id                | `template`, `agent`, `zone`, `status`; in its `Zone`         |
 * | `Jitv::Parameters`| `request`              | the request's template parameters, as tags (see below)      |
 *
 * In an entity id `<issuer>|<id>`, `%` and `|` inside the issuer are percent-encoded, so the
 * first `|` always ends the issuer (see `principalEntityId`).
 *
 * Template parameters have no fixed names, and Cedar records need fixed attributes, so they
 * are the tags of one `Jitv::Parameters` entity that `context.parameters` points at:
 * `context.parameters.hasTag("prefix") && context.parameters.getTag("prefix") like "q3*"`.
 *
 * `context.zone` is the zone of the resource (template, task or the zone listed), so
 * `principal.zone != context.zone` is a zone crossing. `hour` (0–23) and `weekday`
 * (0 = Sunday) are UTC at decision time. Policy annotations: every stored policy has
 * `@id("…")` (named in audit events and 403 bodies when it decides) and may have
 * `@reason("…")`, shown to the caller when the policy forbids a request — so a reason must be
 * safe to show.
 */

/** The Cedar namespace of every jitv entity type and action. */
export const CEDAR_NAMESPACE = "Jitv";

/** Every action of the schema. */
export const CEDAR_ACTIONS = [
  "Vend",
  "Refresh",
  "Complete",
  "Approve",
  "Revoke",
  "ReadTask",
  "ListTasks",
  "ListAgents",
] as const;
export type CedarAction = (typeof CEDAR_ACTIONS)[number];

/** Actions whose resource is a zone (inventory); they take the smaller `AdminContext`. */
export const ZONE_ACTIONS: ReadonlySet<CedarAction> = new Set(["ListTasks", "ListAgents"]);

/** Fully qualified entity type names. */
export const ENTITY = {
  zone: "Jitv::Zone",
  role: "Jitv::Role",
  tenant: "Jitv::Tenant",
  agent: "Jitv::Agent",
  user: "Jitv::User",
  template: "Jitv::Template",
  task: "Jitv::Task",
  parameters: "Jitv::Parameters",
  action: "Jitv::Action",
} as const;

/** The one `Jitv::Parameters` entity of a request. */
export const PARAMETERS_ENTITY_ID = "request";

/** The schema in Cedar's human-readable format. */
export const CEDAR_SCHEMA = `namespace Jitv {
  // A trust zone. A token from one zone has no power in the other unless a policy says so.
  entity Zone enum ["workforce", "customer"];
  // A role the deployment grants a principal (e.g. "admin", "approver").
  entity Role;
  // A customer tenant, from the verified user token's tenant claim only.
  entity Tenant;
  // The request's template parameters, one tag per parameter name.
  entity Parameters tags String;

  entity Agent in [Zone, Role] = {
    issuer: String,
    zone: String,
    id: String,
    groups: Set<String>,
  };
  entity User in [Zone, Role, Tenant] = {
    issuer: String,
    zone: String,
    id: String,
    tenant?: String,
    groups: Set<String>,
  };
  entity Template in [Zone] = {
    zone: String,
    name: String,
    roleArn: String,
    approvalRequired: Bool,
  };
  entity Task in [Zone] = {
    template: Template,
    agent: Agent,
    zone: String,
    status: String,
  };

  // Requests about one template or task.
  type TaskContext = {
    purpose?: String,
    ttlSeconds: Long,
    parameters: Parameters,
    zone: String,
    hour: Long,
    weekday: Long,
    sourceIp?: ipaddr,
    approved: Bool,
    approvals: Long,
    delegated: Bool,
    user?: String,
    tenant?: String,
  };
  // Inventory requests about a whole zone.
  type AdminContext = {
    zone: String,
    hour: Long,
    weekday: Long,
    sourceIp?: ipaddr,
    delegated: Bool,
    user?: String,
    tenant?: String,
  };

  action Vend appliesTo { principal: [Agent], resource: [Template], context: TaskContext };
  action Refresh, Complete appliesTo { principal: [Agent], resource: [Task], context: TaskContext };
  action Approve appliesTo { principal: [User], resource: [Task], context: TaskContext };
  action Revoke, ReadTask appliesTo { principal: [Agent, User], resource: [Task], context: TaskContext };
  action ListTasks, ListAgents appliesTo { principal: [Agent, User], resource: [Zone], context: AdminContext };
}
`;
