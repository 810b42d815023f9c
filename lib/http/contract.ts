import * as z from "zod";
import { TASK_STATUSES } from "../domain/task.js";
import { MAX_PAGE_SIZE } from "../tasks/dynamo-inventory.js";

/**
 * The public API's routes and request schemas in one place (CONTRACT.md section 3): the handlers
 * validate with these schemas, the deployed API Gateway creates one resource per route, and
 * `GET /v1/openapi.json` serves the OpenAPI document generated from both.
 */

export const vendBodySchema = z
  .object({
    template: z.string().min(1).max(64),
    parameters: z.record(z.string(), z.unknown()).optional(),
    purpose: z.string().max(256).optional(),
    ttlSeconds: z.number().int().positive().optional(),
    subjectToken: z.string().min(1).max(8192).optional(),
  })
  .strict();
export const emptyBodySchema = z.object({}).strict();
export const revokeBodySchema = z.object({ reason: z.string().trim().min(1).max(256) }).strict();
export const denyBodySchema = z.object({ reason: z.string().trim().min(1).max(256).optional() }).strict();

const limitSchema = z
  .string()
  .regex(/^[0-9]{1,3}$/, `must be an integer from 1 to ${MAX_PAGE_SIZE}`)
  .transform(Number)
  .pipe(z.number().int().min(1).max(MAX_PAGE_SIZE));
const nextTokenSchema = z.string().min(1).max(8192);

export const listTasksQuerySchema = z
  .object({
    status: z.enum(TASK_STATUSES).optional(),
    agent: z.string().min(1).max(1024).optional(),
    issuer: z.string().min(1).max(2048).optional(),
    template: z.string().min(1).max(64).optional(),
    limit: limitSchema.optional(),
    nextToken: nextTokenSchema.optional(),
  })
  .strict()
  .refine((q) => (q.agent === undefined) === (q.issuer === undefined), {
    message: "agent and issuer go together: an agent id is only unique within its issuer",
    path: ["agent"],
  });
export const listAgentsQuerySchema = z
  .object({ limit: limitSchema.optional(), nextToken: nextTokenSchema.optional() })
  .strict();

/** One route of the public contract. */
export interface ContractRoute {
  readonly method: "GET" | "POST";
  /** With `{param}` segments, as API Gateway and OpenAPI write them. */
  readonly path: string;
  readonly summary: string;
  /** Who may call it: no token, an agent's token, or any verified token (the route decides further). */
  readonly auth: "none" | "agent" | "any";
  readonly body?: z.ZodType;
  /** Checked by API Gateway as well, before the function runs (`vend`, `revoke`). */
  readonly gatewayModel?: "vend" | "revoke";
  readonly query?: z.ZodType;
  /** Success statuses and what they answer. */
  readonly responses: Readonly<Record<string, string>>;
}

/** Every route of the deployed API; a path outside it never reaches the function. */
export const CONTRACT_ROUTES: readonly ContractRoute[] = [
  {
    method: "GET",
    path: "/healthz",
    summary: "Liveness",
    auth: "none",
    responses: { "200": '{"ok": true}' },
  },
  {
    method: "GET",
    path: "/v1/openapi.json",
    summary: "This document",
    auth: "none",
    responses: { "200": "the OpenAPI 3.1 document" },
  },
  {
    method: "POST",
    path: "/v1/tasks",
    summary: "Vend credentials for one task (optional Idempotency-Key header)",
    auth: "agent",
    body: vendBodySchema,
    gatewayModel: "vend",
    responses: { "201": "the task, active, with credentials", "202": "the task, pending approval" },
  },
  {
    method: "GET",
    path: "/v1/tasks",
    summary: "Admin inventory of tasks (scoped to the admin's reach)",
    auth: "any",
    query: listTasksQuerySchema,
    responses: { "200": '{"tasks": [task…], "nextToken"?}' },
  },
  {
    method: "GET",
    path: "/v1/tasks/{taskId}",
    summary: "The task, without credentials (owner agent, or an admin who reaches it)",
    auth: "any",
    responses: { "200": "the task" },
  },
  {
    method: "POST",
    path: "/v1/tasks/{taskId}/credentials",
    summary: "Fresh credentials for the owner's active task",
    auth: "agent",
    body: emptyBodySchema,
    responses: { "200": "the task with credentials" },
  },
  {
    method: "POST",
    path: "/v1/tasks/{taskId}/complete",
    summary: "The agent is done; revocation and rotation follow",
    auth: "agent",
    body: emptyBodySchema,
    responses: { "200": '{"taskId", "status": "completed"}' },
  },
  {
    method: "POST",
    path: "/v1/tasks/{taskId}/revoke",
    summary: "An admin ends a task",
    auth: "any",
    body: revokeBodySchema,
    gatewayModel: "revoke",
    responses: { "200": '{"taskId", "status": "revoked"}' },
  },
  {
    method: "POST",
    path: "/v1/tasks/{taskId}/approve",
    summary: "One approver's approval",
    auth: "any",
    body: emptyBodySchema,
    responses: { "200": '{"taskId", "status", "approvals"}' },
  },
  {
    method: "POST",
    path: "/v1/tasks/{taskId}/deny",
    summary: "An approver refuses",
    auth: "any",
    body: denyBodySchema,
    responses: { "200": '{"taskId", "status": "denied", "approvals"}' },
  },
  {
    method: "GET",
    path: "/v1/agents",
    summary: "Admin registry of agents (scoped to the admin's reach)",
    auth: "any",
    query: listAgentsQuerySchema,
    responses: { "200": '{"agents": [agent…], "nextToken"?}' },
  },
];

const ERROR_CODES = {
  "400": "invalid_request",
  "401": "invalid_token",
  "403": "forbidden",
  "404": "not_found",
  "409": "conflict",
  "429": "rate_limited",
  "500": "internal",
  "503": "upstream_unavailable",
} as const;

let document: Record<string, unknown> | undefined;

/**
 * The OpenAPI 3.1 document of the API, generated from {@link CONTRACT_ROUTES} and their request
 * schemas (the ones the handlers validate with), built once.
 */
export function openApiDocument(): Record<string, unknown> {
  if (document) return document;
  const schema = (s: z.ZodType) => {
    const { $schema: _, ...json } = z.toJSONSchema(s, { io: "input", unrepresentable: "any" }) as Record<
      string,
      unknown
    >;
    return json;
  };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of CONTRACT_ROUTES) {
    const parameters = [
      ...[...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
        name: m[1],
        in: "path",
        required: true,
        schema: { type: "string" },
      })),
      ...(route.query
        ? Object.entries((schema(route.query).properties ?? {}) as Record<string, unknown>).map(
            ([name, s]) => ({
              name,
              in: "query",
              required: false,
              schema: s,
            }),
          )
        : []),
      ...(route.path === "/v1/tasks" && route.method === "POST"
        ? [
            {
              name: "Idempotency-Key",
              in: "header",
              required: false,
              schema: { type: "string", pattern: "^[\\x21-\\x7e]{1,128}$" },
            },
          ]
        : []),
    ];
    const operation = {
      summary: route.summary,
      ...(route.auth === "none" ? { security: [] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body
        ? {
            requestBody: {
              required: route.body !== emptyBodySchema && route.body !== denyBodySchema,
              content: { "application/json": { schema: schema(route.body) } },
            },
          }
        : {}),
      responses: {
        ...Object.fromEntries(
          Object.entries(route.responses).map(([status, description]) => [status, { description }]),
        ),
        ...Object.fromEntries(
          Object.entries(ERROR_CODES).map(([status, code]) => [
            status,
            {
              description: code,
              content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
            },
          ]),
        ),
      },
    };
    paths[route.path] = { ...paths[route.path], [route.method.toLowerCase()]: operation };
  }
  document = {
    openapi: "3.1.0",
    info: { title: "jitv", version: "1", description: "Just-in-time AWS credentials for agents" },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["code", "message"],
              properties: { code: { enum: Object.values(ERROR_CODES) }, message: { type: "string" } },
            },
          },
        },
      },
    },
  };
  return document;
}
