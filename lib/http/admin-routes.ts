import type * as z from "zod";
import { ForbiddenError, InvalidRequestError } from "../domain/errors.js";
import type { VerifiedIdentity } from "../domain/identity.js";
import { formatIssues } from "../domain/template.js";
import type { Inventory, InventoryScope } from "../tasks/inventory.js";
import { bearerToken, type RouteEntry, taskView } from "./api.js";
import { listAgentsQuerySchema, listTasksQuerySchema } from "./contract.js";
import { jsonResponse } from "./errors.js";
import type { HttpRequest } from "./types.js";

/** What the admin routes need; `TaskService` provides `authenticate`, `isAdmin` and `scope`. */
export interface AdminRoutesDeps {
  /** Verifies a bearer token (any kind); throws `InvalidTokenError`. */
  readonly authenticate: (token: string) => Promise<VerifiedIdentity>;
  /** True for identities of the configured admins. */
  readonly isAdmin: (identity: VerifiedIdentity) => boolean;
  /**
   * What the admin may list, decided by Cedar after `isAdmin` (`TaskService.inventoryScope`): every
   * zone for a workforce admin, its own tenant for a customer-zone admin. Throws `ForbiddenError`
   * (naming the policies) on a deny. The listing queries only that scope, so nothing outside it is
   * read, counted or put in a `nextToken`.
   */
  readonly scope: (
    identity: VerifiedIdentity,
    action: "ListTasks" | "ListAgents",
    requestId?: string,
  ) => Promise<InventoryScope>;
  readonly inventory: Inventory;
  /** Clock for the tasks' effective status. @default () => new Date() */
  readonly now?: () => Date;
}

/**
 * The admin inventory routes of CONTRACT.md section 3, for `createApi`'s `extraRoutes`:
 * - `GET /v1/tasks?status=&agent=&issuer=&template=&limit=&nextToken=` → `200 {"tasks": [task…], "nextToken"?}`
 *   (`status` defaults to `active`; `agent` needs `issuer`);
 * - `GET /v1/agents?limit=&nextToken=` → `200 {"agents": [{issuer, id, zone, firstSeen, lastSeen, activeTasks, totalTasks}…], "nextToken"?}`.
 *
 * Any valid token authenticates; only admins are answered, everyone else gets `403 forbidden`;
 * then Cedar decides `ListTasks` / `ListAgents` on the zones (and tenant) the caller reaches (`scope`).
 * The query is checked after the caller, so a non-admin learns nothing from a `400`.
 * @example
 * createApi({ service, logger, extraRoutes: adminRoutes({
 *   authenticate: (t) => service.authenticateAny(t), isAdmin: (i) => service.isAdmin(i),
 *   scope: (i, action, requestId) => service.inventoryScope(i, action, requestId), inventory }) });
 */
export function adminRoutes(deps: AdminRoutesDeps): RouteEntry[] {
  const now = deps.now ?? (() => new Date());
  const admin = async (req: HttpRequest, what: "tasks" | "agents") => {
    const caller = await deps.authenticate(bearerToken(req));
    if (!deps.isAdmin(caller)) throw new ForbiddenError(`only admins may list ${what}`);
    return deps.scope(caller, what === "tasks" ? "ListTasks" : "ListAgents", req.requestId);
  };
  return [
    {
      method: "GET",
      pattern: /^\/v1\/tasks$/,
      handle: async (req) => {
        const scope = await admin(req, "tasks");
        const query = parseQuery(req, listTasksQuerySchema);
        const page = await deps.inventory.listTasks({
          ...scope,
          ...(query.status === undefined ? {} : { status: query.status }),
          ...(query.agent !== undefined && query.issuer !== undefined
            ? { agent: { issuer: query.issuer, id: query.agent } }
            : {}),
          ...(query.template === undefined ? {} : { template: query.template }),
          ...(query.limit === undefined ? {} : { limit: query.limit }),
          ...(query.nextToken === undefined ? {} : { nextToken: query.nextToken }),
        });
        const at = now();
        return jsonResponse(
          200,
          {
            tasks: page.tasks.map((task) => taskView(task, at)),
            ...(page.nextToken === undefined ? {} : { nextToken: page.nextToken }),
          },
          req.requestId,
        );
      },
    },
    {
      method: "GET",
      pattern: /^\/v1\/agents$/,
      handle: async (req) => {
        const scope = await admin(req, "agents");
        const query = parseQuery(req, listAgentsQuerySchema);
        const page = await deps.inventory.listAgents({
          ...scope,
          ...(query.limit === undefined ? {} : { limit: query.limit }),
          ...(query.nextToken === undefined ? {} : { nextToken: query.nextToken }),
        });
        return jsonResponse(
          200,
          {
            agents: page.agents,
            ...(page.nextToken === undefined ? {} : { nextToken: page.nextToken }),
          },
          req.requestId,
        );
      },
    },
  ];
}

/** Checks the query string against a strict schema: `400 invalid_request` naming the bad parameter. */
function parseQuery<T>(req: HttpRequest, schema: z.ZodType<T>): T {
  const present = Object.fromEntries(Object.entries(req.query).filter(([, v]) => v !== undefined));
  const result = schema.safeParse(present);
  if (!result.success) throw new InvalidRequestError(`invalid query: ${formatIssues(result.error)}`);
  return result.data;
}
