import { isIP } from "node:net";
import {
  type AuthorizationAnswer,
  type CedarValueJson,
  type EntityJson,
  type EntityUidJson,
  preparsePolicySet,
  preparseSchema,
  statefulIsAuthorized,
  type TypeAndId,
} from "@cedar-policy/cedar-wasm/nodejs";
import { InternalError, JitvError, UpstreamUnavailableError } from "../domain/errors.js";
import type { VerifiedIdentity, Zone } from "../domain/identity.js";
import type { TaskTemplate } from "../domain/template.js";
import type {
  Authorizer,
  CedarPrincipal,
  CedarRequestContext,
  CedarResource,
  Decision,
  VendDecisionRequest,
} from "./authorizer.js";
import { baselinePolicies } from "./baseline.js";
import {
  agentsPolicyId,
  compileAgentsPolicy,
  formatCedarErrors,
  loadPolicySet,
  type ParsedPolicy,
  principalEntityId,
} from "./cedar-policy-set.js";
import { CEDAR_SCHEMA, type CedarAction, ENTITY, PARAMETERS_ENTITY_ID, ZONE_ACTIONS } from "./schema.js";

export type { CedarPrincipal, CedarRequestContext, CedarResource } from "./authorizer.js";

/** The combined policy set as its store holds it now. */
export interface PolicySnapshot {
  /** Changes whenever any stored policy set changes. */
  readonly version: string;
  /** Cedar text of every stored policy. */
  readonly text: string;
}

/** Where the authorizer reads policies from (implemented by `DynamoPolicyStore`). */
export interface PolicySource {
  current(): Promise<PolicySnapshot>;
}

/** Options of {@link CedarAuthorizer}. */
export interface CedarAuthorizerOptions {
  readonly store: PolicySource;
  /** Clock for `context.hour`/`weekday` and for the reload check. @default () => new Date() */
  readonly now?: () => Date;
  /** How long a loaded policy set is used before the store's version is checked again. @default 5000 */
  readonly cacheMs?: number;
  /**
   * Told when a reload fails (store unreadable, or a stored version that does not parse) while
   * the policies already loaded keep deciding; e.g. log it and count a metric.
   */
  readonly onReloadError?: (error: JitvError) => void;
}

/** Which principal and resource kinds each action takes (mirrors the schema's `appliesTo`). */
const APPLIES_TO: Readonly<
  Record<CedarAction, { principals: readonly ("agent" | "user")[]; resource: CedarResource["kind"] }>
> = {
  Vend: { principals: ["agent"], resource: "template" },
  Refresh: { principals: ["agent"], resource: "task" },
  Complete: { principals: ["agent"], resource: "task" },
  Approve: { principals: ["user"], resource: "task" },
  Revoke: { principals: ["agent", "user"], resource: "task" },
  ReadTask: { principals: ["agent", "user"], resource: "task" },
  ListTasks: { principals: ["agent", "user"], resource: "zone" },
  ListAgents: { principals: ["agent", "user"], resource: "zone" },
};

const DEFAULT_CACHE_MS = 5000;
const SCHEMA_NAME = "jitv-schema";
const NO_POLICY = "no policy permits this request";

let schemaPrepared = false;
let instances = 0;

interface LoadedPolicies {
  readonly version: string;
  /** The stored policies by id (compiled template policies are permits without a reason). */
  readonly byId: ReadonlyMap<string, ParsedPolicy>;
}

/**
 * The Cedar {@link Authorizer}: one engine decides every request from the built-in baseline
 * policies (`BASELINE_POLICIES`: trust-zone boundary, owner agents, admins, approvers), the
 * stored policy sets, and each template's `agents` list, compiled into a `permit` (see
 * `compileAgentsPolicy`).
 *
 * Policies are parsed once per container (Cedar's pre-parsed policy sets) and reloaded when the
 * store's version changes; the version is checked at most every `cacheMs`. If the store cannot
 * be read, the policies already loaded keep deciding; before the first load the error reaches
 * the caller (503).
 *
 * Decisions: allow when a permit applies and no forbid does. A deny names the determining
 * forbid policies (`@id`, with their `@reason`) or says "no policy permits this request";
 * the text of other policies is never shown. A forbid that fails to evaluate denies
 * (Cedar itself would skip it), so a broken forbid can never open access.
 *
 * @example
 * const authorizer = new CedarAuthorizer({ store: new DynamoPolicyStore({ client, tableName }) });
 * const decision = await authorizer.authorizeVend({ agent, template, ttlSeconds: 900, parameters: {} });
 */
export class CedarAuthorizer implements Authorizer {
  readonly #store: PolicySource;
  readonly #now: () => Date;
  readonly #cacheMs: number;
  /** Prefix of this instance's pre-parsed policy set ids (Cedar keeps them per process). */
  readonly #prefix: string;
  /** Pre-parsed set id → what it holds (policy version + compiled template policy). */
  readonly #prepared = new Map<string, string>();
  #loaded: LoadedPolicies | undefined;
  readonly #onReloadError: (error: JitvError) => void;
  #checkedAt = 0;
  #refreshing: Promise<LoadedPolicies> | undefined;

  constructor(options: CedarAuthorizerOptions) {
    this.#store = options.store;
    this.#now = options.now ?? (() => new Date());
    this.#cacheMs = options.cacheMs ?? DEFAULT_CACHE_MS;
    this.#onReloadError = options.onReloadError ?? (() => undefined);
    this.#prefix = `jitv-authz-${++instances}`;
  }

  /** `Vend` on the request's template, for its agent (and the user it acts for). */
  authorizeVend(request: VendDecisionRequest): Promise<Decision> {
    const { subject } = request;
    return this.authorize(
      "Vend",
      { identity: request.agent },
      { kind: "template", template: request.template },
      {
        ttlSeconds: request.ttlSeconds,
        parameters: request.parameters,
        approved: request.approved ?? false,
        approvals: request.approvals ?? 0,
        ...(request.purpose === undefined ? {} : { purpose: request.purpose }),
        ...(request.sourceIp === undefined ? {} : { sourceIp: request.sourceIp }),
        ...(subject ? { onBehalfOf: { user: subject.id, tenant: subject.tenant } } : {}),
      },
    );
  }

  /**
   * Decides any action of the schema with the same semantics as {@link authorizeVend}. A
   * principal or resource kind the action does not take is denied (e.g. an agent approving).
   *
   * @throws UpstreamUnavailableError when the policies were never loaded and the store fails
   * @throws InternalError when the stored policies do not parse or Cedar rejects the request
   * @example
   * await authorizer.authorize("ReadTask", { identity: caller }, { kind: "task", task });
   * await authorizer.authorize("ListTasks", { identity: admin, roles: ["admin"] }, { kind: "zone", zone: "customer" });
   */
  async authorize(
    action: CedarAction,
    principal: CedarPrincipal,
    resource: CedarResource,
    context: CedarRequestContext = {},
  ): Promise<Decision> {
    const applies = APPLIES_TO[action];
    if (!applies.principals.includes(principal.identity.kind) || applies.resource !== resource.kind) {
      return {
        allowed: false,
        reason: `${action} does not apply to ${principal.identity.kind} tokens on a ${resource.kind}`,
        policies: [],
      };
    }
    const loaded = await this.#policies();
    const setId = this.#prepare(loaded, resource.kind === "template" ? resource.template : undefined);
    const { byId } = loaded;

    const principalUid = principalRef(principal.identity);
    const request = {
      principal: principalUid,
      action: { type: ENTITY.action, id: action },
      resource: resourceRef(resource),
      context: buildContext(action, resource, context, this.#now()),
      entities: buildEntities(principal, resource, context),
      preparsedSchemaName: SCHEMA_NAME,
      preparsedPolicySetId: setId,
      validateRequest: true,
    };
    const answer: AuthorizationAnswer = statefulIsAuthorized(request);
    if (answer.type === "failure") {
      throw new InternalError(`the authorization request was rejected: ${formatCedarErrors(answer.errors)}`);
    }
    const { decision, diagnostics } = answer.response;
    const version = { policyVersion: loaded.version };
    // In policy set order (built-in, then stored, then compiled): Cedar's own order is arbitrary.
    const determining = inSetOrder(diagnostics.reason, byId);
    const brokenForbids = diagnostics.errors
      .map((e) => e.policyId)
      .filter((id) => byId.get(id)?.effect === "forbid");

    if (decision === "deny" && determining.length > 0) {
      const named = determining.map((id) => {
        const reason = byId.get(id)?.reason;
        return reason === undefined ? id : `${id} (${reason})`;
      });
      return {
        allowed: false,
        reason: `forbidden by ${plural("policy", determining.length)} ${named.join(", ")}`,
        policies: determining,
        ...version,
      };
    }
    if (brokenForbids.length > 0) {
      return {
        allowed: false,
        reason: `denied: ${plural("policy", brokenForbids.length)} ${brokenForbids.join(", ")} could not be evaluated`,
        policies: brokenForbids,
        ...version,
      };
    }
    if (decision === "allow") {
      return {
        allowed: true,
        reason: `permitted by ${plural("policy", determining.length)} ${determining.join(", ")}`,
        policies: determining,
        ...version,
      };
    }
    const unlisted =
      resource.kind === "template" && action === "Vend" && !isListed(resource.template, principal.identity);
    return {
      allowed: false,
      reason: unlisted ? `${NO_POLICY} (the agent is not in the template's agents list)` : NO_POLICY,
      policies: [],
      ...version,
    };
  }

  /** The loaded policies, reloaded when the store's version changed (checked at most every `cacheMs`). */
  async #policies(): Promise<LoadedPolicies> {
    const now = this.#now().getTime();
    if (this.#loaded && now - this.#checkedAt < this.#cacheMs) return this.#loaded;
    this.#refreshing ??= this.#refresh(now).finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /**
   * Reads the store and parses a new version. On failure the policies already loaded keep
   * deciding until the next check (`cacheMs` later); with none loaded, the caller gets the error.
   */
  async #refresh(now: number): Promise<LoadedPolicies> {
    try {
      const snapshot = await this.#store.current().catch((error: unknown) => {
        throw error instanceof JitvError
          ? error
          : new UpstreamUnavailableError("policy store unavailable", { cause: error });
      });
      if (this.#loaded?.version !== snapshot.version) {
        let policies: ParsedPolicy[];
        try {
          policies = loadPolicySet(snapshot.text);
        } catch (error) {
          throw new InternalError(`stored policy set version ${snapshot.version} does not parse`, {
            cause: error,
          });
        }
        this.#loaded = { version: snapshot.version, byId: withBaseline(policies) };
      }
      this.#checkedAt = now;
      return this.#loaded;
    } catch (error) {
      if (!this.#loaded) throw error;
      this.#onReloadError(error as JitvError);
      this.#checkedAt = now;
      return this.#loaded;
    }
  }

  /**
   * The pre-parsed Cedar policy set for a request: the stored policies, plus the template's
   * compiled `agents` policy. Parsed again only when the policy version or the template's
   * compiled policy changed; one set per template name.
   */
  #prepare(loaded: LoadedPolicies, template: TaskTemplate | undefined): string {
    ensureSchema();
    const compiled = template ? compileAgentsPolicy(template) : undefined;
    const setId = template ? `${this.#prefix}:template:${template.name}` : `${this.#prefix}:base`;
    const holds = `${loaded.version}\n${compiled ?? ""}`;
    if (this.#prepared.get(setId) !== holds) {
      const entries = [...loaded.byId].map(([id, policy]): [string, string] => [id, policy.text]);
      if (template && compiled !== undefined) {
        let id = agentsPolicyId(template.name);
        while (loaded.byId.has(id)) id = `${id}#compiled`;
        entries.push([id, compiled]);
      }
      // fromEntries defines own properties, so no id (not even `__proto__`) can touch the prototype.
      const answer = preparsePolicySet(setId, { staticPolicies: Object.fromEntries(entries) });
      if (answer.type === "failure") {
        throw new InternalError(`the policy set does not parse: ${formatCedarErrors(answer.errors)}`);
      }
      this.#prepared.set(setId, holds);
    }
    return setId;
  }
}

/**
 * The built-in baseline policies, then the stored ones. A stored policy whose `@id` is a
 * built-in one (the store refuses such writes; an older set may still hold one) keeps deciding
 * under the id suffixed `#stored`.
 */
function withBaseline(stored: readonly ParsedPolicy[]): Map<string, ParsedPolicy> {
  const byId = new Map(baselinePolicies().map((p) => [p.id, p]));
  for (const policy of stored) {
    let id = policy.id;
    while (byId.has(id)) id = `${id}#stored`;
    byId.set(id, id === policy.id ? policy : { ...policy, id });
  }
  return byId;
}

function inSetOrder(ids: readonly string[], byId: ReadonlyMap<string, ParsedPolicy>): string[] {
  const order = [...byId.keys()];
  const rank = (id: string) => {
    const at = order.indexOf(id);
    return at === -1 ? order.length : at;
  };
  return [...ids].sort((a, b) => rank(a) - rank(b));
}

function ensureSchema(): void {
  if (schemaPrepared) return;
  const answer = preparseSchema(SCHEMA_NAME, CEDAR_SCHEMA);
  if (answer.type === "failure") {
    throw new InternalError(`the Cedar schema does not parse: ${formatCedarErrors(answer.errors)}`);
  }
  schemaPrepared = true;
}

function isListed(template: TaskTemplate, agent: VerifiedIdentity): boolean {
  return template.agents.some((a) => a.issuer === agent.issuer && a.subjects.includes(agent.id));
}

function plural(word: "policy", n: number): string {
  return n === 1 ? word : "policies";
}

function principalRef(identity: VerifiedIdentity): TypeAndId {
  return {
    type: identity.kind === "agent" ? ENTITY.agent : ENTITY.user,
    id: principalEntityId(identity.issuer, identity.id),
  };
}

function resourceRef(resource: CedarResource): EntityUidJson {
  switch (resource.kind) {
    case "template":
      return { type: ENTITY.template, id: resource.template.name };
    case "task":
      return { type: ENTITY.task, id: resource.task.taskId };
    case "zone":
      return { type: ENTITY.zone, id: resource.zone };
  }
}

function resourceZone(resource: CedarResource): Zone {
  switch (resource.kind) {
    case "template":
      return resource.template.zone;
    case "task":
      return resource.task.zone;
    case "zone":
      return resource.zone;
  }
}

function zoneRef(zone: Zone): EntityUidJson {
  return { type: ENTITY.zone, id: zone };
}

function buildEntities(
  principal: CedarPrincipal,
  resource: CedarResource,
  context: CedarRequestContext,
): EntityJson[] {
  const { identity } = principal;
  const principalUid = principalRef(identity);
  const isUser = identity.kind === "user";
  const entities: EntityJson[] = [
    {
      uid: principalUid,
      attrs: {
        issuer: identity.issuer,
        zone: identity.zone,
        id: identity.id,
        groups: [...identity.groups],
        ...(isUser && identity.tenant !== undefined ? { tenant: identity.tenant } : {}),
      },
      parents: [
        zoneRef(identity.zone),
        ...(principal.roles ?? []).map((role) => ({ type: ENTITY.role, id: role })),
        ...(isUser && identity.tenant !== undefined ? [{ type: ENTITY.tenant, id: identity.tenant }] : []),
      ],
    },
  ];
  const template = resource.kind === "zone" ? undefined : resource.template;
  if (template) entities.push(templateEntity(template));
  if (resource.kind === "task") {
    const { task } = resource;
    const owner = { type: ENTITY.agent, id: principalEntityId(task.agent.issuer, task.agent.id) };
    entities.push({
      uid: { type: ENTITY.task, id: task.taskId },
      attrs: {
        template: { __entity: { type: ENTITY.template, id: task.template } },
        agent: { __entity: owner },
        zone: task.zone,
        status: task.status,
      },
      parents: [zoneRef(task.zone)],
    });
    if (owner.type !== principalUid.type || owner.id !== principalUid.id) {
      entities.push({
        uid: owner,
        attrs: { issuer: task.agent.issuer, zone: task.zone, id: task.agent.id, groups: [] },
        parents: [zoneRef(task.zone)],
      });
    }
  }
  // Zone resources go with the inventory actions, whose context has no parameters.
  if (resource.kind !== "zone") {
    entities.push({
      uid: { type: ENTITY.parameters, id: PARAMETERS_ENTITY_ID },
      attrs: {},
      parents: [],
      tags: { ...parametersOf(resource, context) },
    });
  }
  return entities;
}

function templateEntity(template: TaskTemplate): EntityJson {
  return {
    uid: { type: ENTITY.template, id: template.name },
    attrs: {
      zone: template.zone,
      name: template.name,
      roleArn: template.roleArn,
      approvalRequired: template.approval.required,
    },
    parents: [zoneRef(template.zone)],
  };
}

function parametersOf(
  resource: CedarResource,
  context: CedarRequestContext,
): Readonly<Record<string, string>> {
  return context.parameters ?? (resource.kind === "task" ? resource.task.parameters : {});
}

function buildContext(
  action: CedarAction,
  resource: CedarResource,
  context: CedarRequestContext,
  now: Date,
): Record<string, CedarValueJson> {
  const task = resource.kind === "task" ? resource.task : undefined;
  const onBehalfOf =
    context.onBehalfOf ??
    (task?.onBehalfOf ? { user: task.onBehalfOf.user, tenant: task.onBehalfOf.tenant } : undefined);
  const tenant = onBehalfOf?.tenant ?? (resource.kind === "zone" ? resource.tenant : undefined);
  const sourceIp =
    context.sourceIp !== undefined && isIP(context.sourceIp) !== 0 && !context.sourceIp.includes("%")
      ? context.sourceIp
      : undefined;
  const common: Record<string, CedarValueJson> = {
    zone: resourceZone(resource),
    hour: now.getUTCHours(),
    weekday: now.getUTCDay(),
    delegated: onBehalfOf !== undefined,
    ...(onBehalfOf ? { user: onBehalfOf.user } : {}),
    ...(tenant === undefined ? {} : { tenant }),
    ...(sourceIp === undefined ? {} : { sourceIp: { __extn: { fn: "ip", arg: sourceIp } } }),
  };
  if (ZONE_ACTIONS.has(action)) return common;

  const purpose = context.purpose ?? task?.purpose;
  return {
    ...common,
    ttlSeconds: Math.trunc(context.ttlSeconds ?? defaultTtl(resource)),
    parameters: { __entity: { type: ENTITY.parameters, id: PARAMETERS_ENTITY_ID } },
    approved: context.approved ?? false,
    approvals: Math.trunc(context.approvals ?? task?.approvals?.length ?? 0),
    ...(purpose === undefined ? {} : { purpose }),
  };
}

function defaultTtl(resource: CedarResource): number {
  if (resource.kind === "template") return resource.template.ttl.defaultSeconds;
  if (resource.kind === "task") {
    const { task } = resource;
    return task.ttlSeconds ?? Math.round((Date.parse(task.expiresAt) - Date.parse(task.createdAt)) / 1000);
  }
  return 0;
}
