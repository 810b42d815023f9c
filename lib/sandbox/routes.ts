import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as z from "zod";
import type { TaskService } from "../app/task-service.js";
import { NotFoundError } from "../domain/errors.js";
import { buildAssumeRoleRequest } from "../domain/sts-request.js";
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
