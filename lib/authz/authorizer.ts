import type { VerifiedIdentity, Zone } from "../domain/identity.js";
import type { Task } from "../domain/task.js";
import type { TaskTemplate } from "../domain/template.js";
import type { CedarAction } from "./schema.js";

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

/** Who asks: an agent or user (by its token's `kind`), with the roles the deployment grants it. */
export interface CedarPrincipal {
  readonly identity: VerifiedIdentity;
  /** `Jitv::Role` ids the principal is in, e.g. `["admin"]` when it matches the `admins` rule. */
  readonly roles?: readonly string[];
}

/** What the request is about. */
export type CedarResource =
  | { readonly kind: "template"; readonly template: TaskTemplate }
  | { readonly kind: "task"; readonly task: Task; readonly template?: TaskTemplate }
  /** A zone's inventory; `tenant`: the listing is scoped to that tenant (`context.tenant`). */
  | { readonly kind: "zone"; readonly zone: Zone; readonly tenant?: string };

/**
 * The request's context. Fields left out are taken from the task (for task resources) or get
 * neutral defaults; `zone`, `hour` and `weekday` are always computed.
 */
export interface CedarRequestContext {
  readonly purpose?: string;
  /** @default the task's life, or the template's `ttl.defaultSeconds` */
  readonly ttlSeconds?: number;
  /** @default the task's parameters, or none */
  readonly parameters?: Readonly<Record<string, string>>;
  /** Dropped unless it is a plain IPv4/IPv6 address. */
  readonly sourceIp?: string;
  /** @default false */
  readonly approved?: boolean;
  /** @default the task's approvals so far, or 0 */
  readonly approvals?: number;
  /** The user (and tenant) a delegated request acts for. @default the task's `onBehalfOf` */
  readonly onBehalfOf?: { readonly user: string; readonly tenant?: string };
}

/**
 * Port: one engine decides every action. `authorizeVend`: may this agent (for this user) use
 * this template now? `authorize`: any action of the schema (Refresh, Complete, Approve, Revoke,
 * ReadTask, ListTasks, ListAgents, and Vend), for a principal with its roles, on a resource.
 */
export interface Authorizer {
  authorizeVend(request: VendDecisionRequest): Promise<Decision>;
  authorize(
    action: CedarAction,
    principal: CedarPrincipal,
    resource: CedarResource,
    context?: CedarRequestContext,
  ): Promise<Decision>;
}
