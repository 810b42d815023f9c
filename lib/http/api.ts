import type { Logger } from "@aws-lambda-powertools/logger";
import * as z from "zod";
import type { ApprovalService } from "../app/approval-service.js";
import type { TaskService } from "../app/task-service.js";
import { InvalidRequestError, InvalidTokenError, NotFoundError } from "../domain/errors.js";
import { effectiveStatus, type Task } from "../domain/task.js";
import { formatIssues } from "../domain/template.js";
import {
  denyBodySchema,
  emptyBodySchema,
  openApiDocument,
  revokeBodySchema,
  vendBodySchema,
} from "./contract.js";
import { errorResponse, jsonResponse } from "./errors.js";
import type { HttpRequest, HttpResponse } from "./types.js";

/** Largest accepted request body. */
export const MAX_BODY_BYTES = 16 * 1024;

const idempotencyKeySchema = z
  .string()
  .regex(/^[\x21-\x7e]{1,128}$/, "must be 1..128 visible ASCII characters");

export type Route = (req: HttpRequest, params: string[]) => Promise<HttpResponse>;

export interface ApiOptions {
  readonly service: TaskService;
  /** Approve / deny. */
  readonly approvals: ApprovalService;
  readonly logger: Logger;
  /** Extra routes: the admin inventory, and in the sandbox `/v1/sandbox/*` (absent from the deployed API). */
  readonly extraRoutes?: readonly RouteEntry[];
  readonly now?: () => Date;
}

export interface RouteEntry {
  readonly method: string;
  readonly pattern: RegExp;
  readonly handle: Route;
}

/**
 * The HTTP API of CONTRACT.md section 3 as one function from request to response, shared
 * by the Lambda entry points and the sandbox server. Every response, error or not, carries
 * the request id; every log line of the request carries it too.
 */
export function createApi(options: ApiOptions): (req: HttpRequest) => Promise<HttpResponse> {
  const { service, approvals } = options;
  const now = options.now ?? (() => new Date());
  const routes: RouteEntry[] = [
    {
      method: "GET",
      pattern: /^\/healthz$/,
      handle: async (req) => jsonResponse(200, { ok: true }, req.requestId),
    },
    {
      method: "GET",
      pattern: /^\/v1\/openapi\.json$/,
      handle: async (req) => jsonResponse(200, openApiDocument(), req.requestId),
    },
    {
      method: "POST",
      pattern: /^\/v1\/tasks$/,
      handle: async (req) => {
        const agent = await service.authenticateAgent(bearerToken(req));
        const body = parseBody(req, vendBodySchema);
        const key = req.headers["idempotency-key"];
        const idempotencyKey = key === undefined ? undefined : parseHeader("Idempotency-Key", key);
        const result = await service.vend(agent, body, {
          ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
          ...(req.sourceIp === undefined ? {} : { sourceIp: req.sourceIp }),
          requestId: req.requestId,
        });
        const view = taskView(result.task, now());
        return jsonResponse(
          result.status,
          result.credentials ? { ...view, credentials: result.credentials } : view,
          req.requestId,
        );
      },
    },
    {
      method: "GET",
      pattern: /^\/v1\/tasks\/([^/]+)$/,
      handle: async (req, [taskId = ""]) => {
        const caller = await service.authenticateAny(bearerToken(req));
        const task = await service.getTask(caller, decodeURIComponent(taskId), req.requestId);
        return jsonResponse(200, taskView(task, now()), req.requestId);
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/tasks\/([^/]+)\/credentials$/,
      handle: async (req, [taskId = ""]) => {
        const caller = await service.authenticateAgent(bearerToken(req));
        parseOptionalBody(req, emptyBodySchema);
        const result = await service.refresh(caller, decodeURIComponent(taskId), req.requestId);
        return jsonResponse(
          200,
          { ...taskView(result.task, now()), credentials: result.credentials },
          req.requestId,
        );
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/tasks\/([^/]+)\/complete$/,
      handle: async (req, [taskId = ""]) => {
        const caller = await service.authenticateAgent(bearerToken(req));
        parseOptionalBody(req, emptyBodySchema);
        const task = await service.complete(caller, decodeURIComponent(taskId), req.requestId);
        return jsonResponse(200, { taskId: task.taskId, status: task.status }, req.requestId);
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/tasks\/([^/]+)\/revoke$/,
      handle: async (req, [taskId = ""]) => {
        const caller = await service.authenticateAny(bearerToken(req));
        const { reason } = parseBody(req, revokeBodySchema);
        const task = await service.revoke(caller, decodeURIComponent(taskId), reason, req.requestId);
        return jsonResponse(200, { taskId: task.taskId, status: task.status }, req.requestId);
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/tasks\/([^/]+)\/approve$/,
      handle: async (req, [taskId = ""]) => {
        const caller = await service.authenticateAny(bearerToken(req));
        parseOptionalBody(req, emptyBodySchema);
        return jsonResponse(
          200,
          await approvals.approve(caller, decodeURIComponent(taskId), req.requestId),
          req.requestId,
        );
      },
    },
    {
      method: "POST",
      pattern: /^\/v1\/tasks\/([^/]+)\/deny$/,
      handle: async (req, [taskId = ""]) => {
        const caller = await service.authenticateAny(bearerToken(req));
        const body = parseOptionalBody(req, denyBodySchema);
        const result = await approvals.deny(caller, decodeURIComponent(taskId), body?.reason, req.requestId);
        return jsonResponse(200, result, req.requestId);
      },
    },
    ...(options.extraRoutes ?? []),
  ];

  // Every line of a request names it by `requestId`, passed with each line: a child logger per
  // request (`createChild`) would build a logger and a console on every call of the hot path.
  const { logger } = options;
  return async (req) => {
    const { requestId } = req;
    try {
      const response = await route(routes, req);
      logger.info("request", {
        requestId,
        method: req.method,
        path: redactPath(req.path),
        status: response.status,
      });
      return response;
    } catch (err) {
      const response = errorResponse(err, requestId, logger);
      logger.info("request", {
        requestId,
        method: req.method,
        path: redactPath(req.path),
        status: response.status,
      });
      return response;
    }
  };
}

async function route(routes: readonly RouteEntry[], req: HttpRequest): Promise<HttpResponse> {
  for (const entry of routes) {
    const match = entry.method === req.method ? entry.pattern.exec(req.path) : null;
    if (match) return entry.handle(req, match.slice(1));
  }
  throw new NotFoundError("no such route");
}

/** Task ids are not secrets, but paths are logged: keep them short and free of control characters. */
function redactPath(path: string): string {
  return path.replace(/[^\x21-\x7e]/g, "?").slice(0, 200);
}

/** The `Authorization: Bearer …` token; 401 when absent or malformed. */
export function bearerToken(req: HttpRequest): string {
  const header = req.headers.authorization;
  const match = header === undefined ? null : /^Bearer ([\x21-\x7e]+)$/.exec(header.trim());
  if (!match?.[1]) throw new InvalidTokenError("missing or malformed bearer token");
  return match[1];
}

/** Parses a JSON body against a strict schema: 400 for oversized, malformed or unknown fields. */
export function parseBody<T>(req: HttpRequest, schema: z.ZodType<T>): T {
  const raw = req.body ?? "";
  if (Buffer.byteLength(raw, "utf8") > MAX_BODY_BYTES) {
    throw new InvalidRequestError(`request body exceeds ${MAX_BODY_BYTES} bytes`);
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new InvalidRequestError("request body is not valid JSON");
  }
  const result = schema.safeParse(json);
  if (!result.success) throw new InvalidRequestError(`invalid request: ${formatIssues(result.error)}`);
  return result.data;
}

/** Like {@link parseBody}, for calls whose body may be empty. */
export function parseOptionalBody<T>(req: HttpRequest, schema: z.ZodType<T>): T | undefined {
  return req.body === undefined || req.body.trim() === "" ? undefined : parseBody(req, schema);
}

function parseHeader(name: string, value: string): string {
  const result = idempotencyKeySchema.safeParse(value);
  if (!result.success)
    throw new InvalidRequestError(`${name} ${result.error.issues[0]?.message ?? "is invalid"}`);
  return result.data;
}

/** The public view of a task: never its session policy internals beyond what the contract shows. */
export function taskView(task: Task, now: Date) {
  return {
    taskId: task.taskId,
    status: effectiveStatus(task, now),
    template: task.template,
    agent: { issuer: task.agent.issuer, id: task.agent.id },
    ...(task.onBehalfOf
      ? { onBehalfOf: { user: task.onBehalfOf.user, tenant: task.onBehalfOf.tenant } }
      : {}),
    ...(task.purpose === undefined ? {} : { purpose: task.purpose }),
    createdAt: task.createdAt,
    expiresAt: task.expiresAt,
    ...(task.reason === undefined ? {} : { reason: task.reason }),
  };
}
