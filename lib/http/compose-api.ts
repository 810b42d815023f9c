import { type Core, type CoreOptions, composeCore } from "../app/compose.js";
import { adminRoutes } from "./admin-routes.js";
import { createApi, type RouteEntry } from "./api.js";
import type { HttpRequest, HttpResponse } from "./types.js";

export interface ApiOptions extends CoreOptions {
  /** Extra routes built from the composed parts (the sandbox's `/v1/sandbox/*`). */
  readonly extraRoutes?: (core: Core) => readonly RouteEntry[];
}

/** The composed core with its HTTP API: the contract's routes, the admin inventory, and any extra routes. */
export interface ApiCore extends Core {
  readonly api: (req: HttpRequest) => Promise<HttpResponse>;
}

/**
 * Composes the core (`composeCore`) and puts the HTTP API in front of it. The Lambda and the
 * sandbox both call this; they differ only in the adapters they pass.
 */
export function composeApi(options: ApiOptions): ApiCore {
  const core = composeCore(options);
  const { service, approvals, roles, inventory, logger } = core;
  const api = createApi({
    service,
    approvals,
    logger,
    ...(options.now ? { now: options.now } : {}),
    extraRoutes: [
      ...adminRoutes({
        authenticate: (token) => service.authenticateAny(token),
        isAdmin: (identity) => roles.isAdmin(identity),
        scope: (identity, action, requestId) => service.inventoryScope(identity, action, requestId),
        inventory,
      }),
      ...(options.extraRoutes?.(core) ?? []),
    ],
  });
  return { ...core, api };
}
