import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as z from "zod";
import type { TaskService } from "../app/task-service.js";
import { type AuditReader, auditQueryOf, auditQueryParamsSchema } from "../audit/audit-reader.js";
import type { SandboxBroker } from "../credentials/sandbox-broker.js";
import { ForbiddenError, InvalidRequestError, NotFoundError } from "../domain/errors.js";
import type { VerifiedIdentity } from "../domain/identity.js";
import { assumeRoleInput, buildAssumeRoleRequest } from "../domain/sts-request.js";
import { formatIssues } from "../domain/template.js";
import type { DriftDetector } from "../drift/detector.js";
import { CLOUDTRAIL_DETAIL_TYPE, driftEventPattern, matchesEventPattern } from "../drift/event-pattern.js";
import { bearerToken, parseBody, type RouteEntry } from "../http/api.js";
import { jsonResponse } from "../http/errors.js";
import { REVOCATION_POLICY_NAME, type RolePolicyWriter } from "../revocation/revocation-store.js";
import type { DynamoSecretRotator } from "../secrets/dynamo-secret-rotator.js";
import type { TemplateStore } from "../tasks/template-store.js";
import { type SimulationResult, simulateTaskRequest } from "./simulate.js";

/** The policy a sandbox role has when `roles/` does not describe it. */
export const ALLOW_ALL_POLICY = JSON.stringify({
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }],
});

const roleFileSchema = z
  .object({
    roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/),
    policies: z.array(z.record(z.string(), z.unknown())).min(1),
  })
  .strict();

/**
 * Reads `DIR/*.json`, each `{"roleArn", "policies": [policy…]}`: the identity policies of the
 * sandbox's target roles. A role no file describes gets {@link ALLOW_ALL_POLICY}.
 */
export function loadRolePolicies(dir: string | undefined): Map<string, string[]> {
  const roles = new Map<string, string[]>();
  if (!dir) return roles;
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
    const parsed = roleFileSchema.safeParse(JSON.parse(readFileSync(join(dir, file), "utf8")));
    if (!parsed.success) throw new Error(`role file ${join(dir, file)}: ${parsed.error.issues[0]?.message}`);
    roles.set(
      parsed.data.roleArn,
      parsed.data.policies.map((p) => JSON.stringify(p)),
    );
  }
  return roles;
}

const simulateSchema = z
  .object({
    taskId: z.string().min(1).max(64),
    action: z.string().min(1).max(128),
    resource: z.string().min(1).max(2048),
  })
  .strict();

/**
 * The sandbox-only routes (absent from the deployed API): `POST /v1/sandbox/simulate` and
 * `GET /v1/sandbox/secrets/{name}`.
 */
export function sandboxRoutes(deps: {
  service: TaskService;
  templates: TemplateStore;
  writer: RolePolicyWriter;
  secrets: DynamoSecretRotator;
  roles: Map<string, string[]>;
  now?: () => Date;
}): RouteEntry[] {
  const now = deps.now ?? (() => new Date());
  return [
    {
      method: "POST",
      pattern: /^\/v1\/sandbox\/simulate$/,
      handle: async (req) => {
        const caller = await deps.service.authenticateAny(bearerToken(req));
        const body = parseBody(req, simulateSchema);
        const task = await deps.service.getTask(caller, body.taskId); // owner agent or admin, else 404
        const template = await deps.templates.get(task.template);
        if (!template) throw new NotFoundError("the task's template no longer exists");
        // The session exactly as STS would have been asked for it.
        const session = buildAssumeRoleRequest({ task, template, now: new Date(task.createdAt) });
        const revocationPolicy = await revocationDocument(deps.writer, task.roleArn);
        const result = await simulateTaskRequest(
          {
            roleArn: task.roleArn,
            rolePolicies: deps.roles.get(task.roleArn) ?? [ALLOW_ALL_POLICY],
            ...(revocationPolicy ? { revocationPolicy } : {}),
            sessionPolicy: task.sessionPolicy,
            sessionTags: session.tags,
            sessionName: session.roleSessionName,
            sourceIdentity: session.sourceIdentity,
            tokenIssueTime: task.createdAt,
            action: body.action,
            resource: body.resource,
          },
          { now: now() },
        );
        return jsonResponse(200, result, req.requestId);
      },
    },
    {
      method: "GET",
      pattern: /^\/v1\/sandbox\/secrets\/([^/]+)$/,
      handle: async (req, [name = ""]) => {
        const secret = await deps.secrets.describe(decodeURIComponent(name));
        if (!secret) throw new NotFoundError("unknown secret");
        return jsonResponse(200, { name: secret.name, versionId: secret.versionId }, req.requestId);
      },
    },
  ];
}

/**
 * `GET /v1/sandbox/tasks/{taskId}/assume-role` (sandbox only; the owner agent, or an admin who
 * reaches the task, else `404` like `GET /v1/tasks/{taskId}`): what the sandbox would have asked
 * STS for. `{"taskId", "sessionPolicy", "assumeRole", "assumeRoleCalls"}`: the rendered session
 * policy, the exact `AssumeRole` input of the latest credentials, in the SDK's field names as
 * `StsBroker` sends it (`null` before any: pending approval, or a sandbox restarted on kept
 * data, since the broker records in memory), and how many were recorded for the task (a vend, then
 * one per refresh). `jitv task get` adds it to the task when the API is on this machine.
 */
export function sandboxAssumeRoleRoute(deps: { service: TaskService; broker: SandboxBroker }): RouteEntry {
  return {
    method: "GET",
    pattern: /^\/v1\/sandbox\/tasks\/([^/]+)\/assume-role$/,
    handle: async (req, [taskId = ""]) => {
      const caller = await deps.service.authenticateAny(bearerToken(req));
      const task = await deps.service.getTask(caller, decodeURIComponent(taskId), req.requestId);
      const recorded = deps.broker.requests.filter((r) => r.roleSessionName === task.taskId);
      const last = recorded.at(-1);
      return jsonResponse(
        200,
        {
          taskId: task.taskId,
          sessionPolicy: JSON.parse(task.sessionPolicy) as unknown,
          assumeRole: last ? assumeRoleInput(last) : null,
          assumeRoleCalls: recorded.length,
        },
        req.requestId,
      );
    },
  };
}

/**
 * `GET /v1/sandbox/audit?task=&agent=&since=&limit=` (admin token, sandbox only): the sandbox's audit
 * trail, the newest `limit` (default 100) matching events oldest first, as `{"events": [...]}`.
 * Like the inventory it answers admins only (`403` for anyone else, before the query is looked
 * at) and only within their reach, decided by Cedar's `ListTasks`: a customer-zone admin sees
 * their tenant's events, a workforce admin without the customer zone the events naming no tenant.
 */
export function sandboxAuditRoute(deps: {
  service: TaskService;
  isAdmin: (identity: VerifiedIdentity) => boolean;
  trail: AuditReader;
}): RouteEntry {
  return {
    method: "GET",
    pattern: /^\/v1\/sandbox\/audit$/,
    handle: async (req) => {
      const caller = await deps.service.authenticateAny(bearerToken(req));
      if (!deps.isAdmin(caller)) throw new ForbiddenError("only admins may read the audit trail");
      const scope = await deps.service.inventoryScope(caller, "ListTasks", req.requestId);
      const present = Object.fromEntries(Object.entries(req.query).filter(([, v]) => v !== undefined));
      const params = auditQueryParamsSchema.safeParse(present);
      if (!params.success) throw new InvalidRequestError(`invalid query: ${formatIssues(params.error)}`);
      const tenant = scope.tenant ?? (scope.zone === "workforce" ? null : undefined);
      const events = await deps.trail.read({
        ...auditQueryOf(params.data),
        ...(tenant === undefined ? {} : { tenant }),
      });
      return jsonResponse(200, { events }, req.requestId);
    },
  };
}

const cloudTrailSchema = z
  .object({ Records: z.array(z.record(z.string(), z.unknown())).min(1).max(100) })
  .strict();

/**
 * `POST /v1/sandbox/cloudtrail` (workforce admin token, sandbox only), body `{"Records": [...]}` in
 * CloudTrail's record format: each record that the deployed rule's pattern would deliver (a jitv
 * role's session in one of the target accounts) goes to the same drift detector the `drift`
 * Lambda runs, in order. `202` with what it did: `{"delivered", "handled", "duplicates",
 * "ignored", "findings": [{taskId, rule, detail, outcome}]}`. Only a workforce admin may post:
 * the detector acts on every tenant's tasks.
 */
export function sandboxDriftRoute(deps: {
  service: TaskService;
  isAdmin: (identity: VerifiedIdentity) => boolean;
  detector: DriftDetector;
  /** The target accounts whose roles' sessions the rule delivers. */
  accounts: readonly string[];
}): RouteEntry {
  // The sandbox's roles need not sit under a role path: every role of a target account.
  const pattern = driftEventPattern(deps.accounts.map((account) => `arn:aws:iam::${account}:role/`));
  return {
    method: "POST",
    pattern: /^\/v1\/sandbox\/cloudtrail$/,
    handle: async (req) => {
      const caller = await deps.service.authenticateAny(bearerToken(req));
      if (!deps.isAdmin(caller) || caller.zone !== "workforce") {
        throw new ForbiddenError("only workforce admins may post CloudTrail records");
      }
      const { Records: records } = parseBody(req, cloudTrailSchema);
      // As EventBridge wraps a CloudTrail record: the record is the event's `detail`.
      const delivered = records.filter((record) =>
        matchesEventPattern(pattern, {
          "detail-type": CLOUDTRAIL_DETAIL_TYPE,
          source: `aws.${String(record.eventSource ?? "").split(".")[0]}`,
          detail: record,
        }),
      );
      const report = await deps.detector.handle(delivered);
      return jsonResponse(
        202,
        {
          delivered: delivered.length,
          ...report,
          ignored: report.ignored + records.length - delivered.length,
        },
        req.requestId,
      );
    },
  };
}

/**
 * The role's whole revocation deny list for the simulation: its inline policy's statements and
 * those of its overflow managed policies, as one document (IAM evaluates them all the same way).
 */
export async function revocationDocument(
  writer: RolePolicyWriter,
  roleArn: string,
): Promise<string | undefined> {
  const inline = await writer.get(roleArn, REVOCATION_POLICY_NAME);
  const overflow = await Promise.all(
    (await writer.overflowPolicies(roleArn)).map((id) => writer.getOverflow(roleArn, id)),
  );
  const statements = [inline, ...overflow].flatMap((document) =>
    document === undefined ? [] : ((JSON.parse(document) as { Statement: unknown[] }).Statement ?? []),
  );
  return statements.length === 0
    ? undefined
    : JSON.stringify({ Version: "2012-10-17", Statement: statements });
}

/**
 * The decision for one allow-all session of `taskId` on `roleArn`, issued at `issuedAt`, under the
 * role's current revocation documents: `ExplicitlyDenied` once the task is revoked (listed or
 * behind the cutoff), `Allowed` otherwise. For checking revocation at scale (tests, bench).
 */
export async function sessionDecision(input: {
  readonly roleArn: string;
  readonly taskId: string;
  readonly revocationPolicy: string | undefined;
  readonly issuedAt: Date;
  readonly now: Date;
}): Promise<SimulationResult["decision"]> {
  const result = await simulateTaskRequest(
    {
      roleArn: input.roleArn,
      rolePolicies: [ALLOW_ALL_POLICY],
      ...(input.revocationPolicy ? { revocationPolicy: input.revocationPolicy } : {}),
      sessionPolicy: ALLOW_ALL_POLICY,
      sessionTags: [{ Key: "jitv:task", Value: input.taskId }],
      sessionName: input.taskId,
      tokenIssueTime: input.issuedAt.toISOString(),
      action: "s3:GetObject",
      resource: "arn:aws:s3:::reports/q3.csv",
    },
    { now: input.now },
  );
  return result.decision;
}
