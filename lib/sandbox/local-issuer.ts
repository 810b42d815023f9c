import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from "jose";
import { ConfigError } from "../domain/errors.js";

/** A workload identity of the local issuer: it gets tokens with its own client credentials. */
export interface LocalClient {
  /** Client id; becomes the token's `sub`. */
  readonly id: string;
  readonly secret: string;
}

/** A demo human user of the customer zone. */
/** A demo workforce user (an employee: approver or admin of the workforce zone). */
export interface LocalStaff extends LocalClient {
  /** Carried in the `groups` claim when given (e.g. `["jitv-approvers"]`). */
  readonly groups?: readonly string[];
}

export interface LocalUser extends LocalClient {
  /** Carried in the `tenant` claim. */
  readonly tenant: string;
  /** Carried in the `email` claim when given. */
  readonly email?: string;
  /** Carried in the `groups` claim when given (e.g. `["jitv-admins"]`). */
  readonly groups?: readonly string[];
}

export interface LocalIssuerOptions {
  /**
   * TCP port; `0` picks a free one.
   * @default 8788
   */
  readonly port?: number;
  /**
   * Only loopback: the issuer's clients are demo identities with known secrets.
   * @default "127.0.0.1"
   */
  readonly host?: "127.0.0.1";
  /** Clients of the `/agents` issuer (agents of the workforce zone). */
  readonly workforceAgents: readonly LocalClient[];
  /** Clients of the `/customer-agents` issuer (customer-facing agents). */
  readonly customerAgents: readonly LocalClient[];
  /** Clients of the `/users` issuer (demo human users of the customer zone). */
  readonly users: readonly LocalUser[];
  /** Clients of the `/staff` issuer (demo workforce users: approvers, admins). */
  readonly staff?: readonly LocalStaff[];
  /**
   * `aud` of every token issued.
   * @default "jitv"
   */
  readonly audience?: string;
}

/** Where one of the local issuers can be reached. */
export interface LocalIssuerEndpoints {
  /** Exact `iss` of its tokens, e.g. `http://127.0.0.1:8788/agents`. */
  readonly issuer: string;
  readonly discoveryUri: string;
  readonly jwksUri: string;
  readonly tokenEndpoint: string;
}

/** The running local issuer. */
export interface LocalIssuer {
  /** The port actually bound (useful with `port: 0`). */
  readonly port: number;
  /** `aud` of every token issued. */
  readonly audience: string;
  /**
   * RFC 8707 resource indicator that yields tokens for {@link LocalIssuer.audience}.
   * Clients may omit it: the issuers default to it.
   */
  readonly resource: string;
  readonly issuers: {
    /** `/agents`: agents of the workforce zone. */
    readonly workforceAgents: LocalIssuerEndpoints;
    /** `/customer-agents`: customer-facing agents (customer zone). */
    readonly customerAgents: LocalIssuerEndpoints;
    /** `/users`: demo human users (customer zone); tokens carry `tenant`, `groups`. */
    readonly users: LocalIssuerEndpoints;
    /** `/staff`: demo workforce users; tokens carry `groups`. */
    readonly staff: LocalIssuerEndpoints;
  };
  /** Stops listening and drops open connections. Safe to call twice, and unbound (`closers.push(issuer.close)`). */
  close(): Promise<void>;
}

/** Access token lifetime of every local issuer. */
export const LOCAL_TOKEN_LIFETIME_SECONDS = 600;

const DEFAULT_PORT = 8788;
const DEFAULT_AUDIENCE = "jitv";

/** The only routes served; everything else oidc-provider knows (authorization, logout, …) answers 404. */
const SERVED_ROUTES = new Set(["/.well-known/openid-configuration", "/jwks", "/token"]);

/**
 * Starts the sandbox's OIDC issuers: three real issuers (`oidc-provider`) on one HTTP server
 * bound to 127.0.0.1 —
 *
 * - `http://127.0.0.1:PORT/agents` — workforce agents,
 * - `http://127.0.0.1:PORT/customer-agents` — customer-facing agents,
 * - `http://127.0.0.1:PORT/users` — demo human users of the customer zone.
 *
 * Each publishes discovery (`/.well-known/openid-configuration`), a JWKS (`/jwks`) with its
 * own ES256 key generated at start, and a token endpoint (`/token`) accepting only the
 * `client_credentials` grant with `client_secret_basic` or `client_secret_post`. Tokens are
 * RFC 9068 JWT access tokens (`typ: at+jwt`, ES256) living 600 s with `iss`, `sub` (the
 * client id), `aud`, `iat`, `exp`, `jti` and `client_id`; user tokens also carry `tenant`,
 * `preferred_username` (the id) and, when configured, `email` and `groups`.
 *
 * Sandbox simplification: a demo *user* also gets a token with their own client
 * credentials — there is no interactive login. Real deployments take user tokens from the
 * workforce or customer identity provider.
 *
 * @example
 * ```ts
 * const issuer = await startLocalIssuer({
 *   port: 0,
 *   workforceAgents: [{ id: "agent-a", secret: "agent-a-secret" }],
 *   customerAgents: [{ id: "support-bot", secret: "support-bot-secret" }],
 *   users: [{ id: "alice", secret: "alice-secret", tenant: "acme", groups: ["jitv-approvers"] }],
 * });
 * const token = await fetchClientCredentialsToken({
 *   tokenEndpoint: issuer.issuers.workforceAgents.tokenEndpoint,
 *   clientId: "agent-a",
 *   clientSecret: "agent-a-secret",
 * });
 * await issuer.close();
 * ```
 *
 * @throws ConfigError when a client has an empty id or secret, an id repeats within one issuer,
 *   or a user has an empty tenant; the `listen` error (e.g. `code: "EADDRINUSE"`) when the port is taken.
 */
export async function startLocalIssuer(options: LocalIssuerOptions): Promise<LocalIssuer> {
  const host = options.host ?? "127.0.0.1";
  const audience = options.audience ?? DEFAULT_AUDIENCE;
  if (audience.length === 0) {
    throw new ConfigError("local issuer: audience must not be empty");
  }
  // oidc-provider only accepts absolute URIs as resource indicators, and "jitv" is not one.
  const resource = URL.canParse(audience) ? audience : `urn:jitv:audience:${audience}`;

  checkClients("workforceAgents", options.workforceAgents);
  checkClients("customerAgents", options.customerAgents);
  checkClients("users", options.users);
  checkClients("staff", options.staff ?? []);
  for (const user of options.users) {
    if (user.tenant.length === 0) {
      throw new ConfigError(`local issuer: user "${user.id}" has an empty tenant`);
    }
  }

  const { Provider, InvalidTarget } = await loadOidcProvider();

  const handlers = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
  const server = createServer((req, res) => route(handlers, req, res));
  const port = await listen(server, options.port ?? DEFAULT_PORT, host);
  const base = `http://${host}:${port}`;

  try {
    const usersById = new Map(options.users.map((user) => [user.id, user]));
    const staffById = new Map((options.staff ?? []).map((member) => [member.id, member]));
    const mount = async (
      path: string,
      clients: readonly LocalClient[],
      extraTokenClaims: (clientId: string) => Record<string, unknown> | undefined,
    ): Promise<LocalIssuerEndpoints> => {
      const issuer = `${base}${path}`;
      const configuration = await providerConfiguration({
        clients,
        audience,
        resource,
        InvalidTarget,
        extraTokenClaims,
      });
      const provider = new Provider(issuer, configuration);
      provider.on("server_error", (_ctx, error) => {
        // Real failures stay visible; only oidc-provider's start-up notices are silenced.
        console.error(`local issuer ${path}: server_error: ${error.message}`);
      });
      handlers.set(path, provider.callback());
      return {
        issuer,
        discoveryUri: `${issuer}/.well-known/openid-configuration`,
        jwksUri: `${issuer}/jwks`,
        tokenEndpoint: `${issuer}/token`,
      };
    };

    const issuers = {
      workforceAgents: await mount("/agents", options.workforceAgents, () => undefined),
      customerAgents: await mount("/customer-agents", options.customerAgents, () => undefined),
      users: await mount("/users", options.users, (clientId) => userClaims(usersById.get(clientId))),
      staff: await mount("/staff", options.staff ?? [], (clientId) => staffClaims(staffById.get(clientId))),
    };

    let closing: Promise<void> | undefined;
    return {
      port,
      audience,
      resource,
      issuers,
      close() {
        closing ??= closeServer(server);
        return closing;
      },
    };
  } catch (error) {
    await closeServer(server);
    throw error;
  }
}

function checkClients(label: string, clients: readonly LocalClient[]): void {
  const seen = new Set<string>();
  for (const client of clients) {
    if (client.id.length === 0) {
      throw new ConfigError(`local issuer: ${label} has a client with an empty id`);
    }
    if (client.secret.length === 0) {
      throw new ConfigError(`local issuer: ${label} client "${client.id}" has an empty secret`);
    }
    if (seen.has(client.id)) {
      throw new ConfigError(`local issuer: ${label} client id "${client.id}" appears twice`);
    }
    seen.add(client.id);
  }
}

function staffClaims(member: LocalStaff | undefined): Record<string, unknown> | undefined {
  if (member === undefined) return undefined;
  return { preferred_username: member.id, ...(member.groups ? { groups: [...member.groups] } : {}) };
}

function userClaims(user: LocalUser | undefined): Record<string, unknown> | undefined {
  if (user === undefined) {
    return undefined;
  }
  return {
    tenant: user.tenant,
    preferred_username: user.id,
    ...(user.email === undefined ? {} : { email: user.email }),
    ...(user.groups === undefined ? {} : { groups: [...user.groups] }),
  };
}

/** Strips the issuer's path prefix and hands the request to that issuer's oidc-provider. */
function route(
  handlers: ReadonlyMap<string, (req: IncomingMessage, res: ServerResponse) => void>,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const url = req.url ?? "/";
  for (const [path, handler] of handlers) {
    if (!url.startsWith(`${path}/`)) {
      continue;
    }
    const rest = url.slice(path.length);
    const pathname = rest.split("?", 1)[0] ?? "";
    if (!SERVED_ROUTES.has(pathname)) {
      break;
    }
    // oidc-provider derives its endpoint URLs' mount path from `originalUrl` minus `url`.
    Object.assign(req, { originalUrl: url });
    req.url = rest;
    handler(req, res);
    return;
  }
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ error: "not_found", error_description: "no such endpoint on the local issuer" }));
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close((error) => (error === undefined ? resolve() : reject(error)));
    // Keep-alive connections (e.g. from fetch) would otherwise hold close() open.
    server.closeAllConnections();
  });
}

// --- oidc-provider -------------------------------------------------------------------------

/** The few members of oidc-provider's `Provider` used here (the package ships no types). */
interface OidcProvider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: "server_error", listener: (ctx: unknown, error: Error) => void): unknown;
}

interface OidcProviderModule {
  readonly Provider: new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;
  /** oidc-provider's `errors.InvalidTarget`, thrown to answer `invalid_target`. */
  readonly InvalidTarget: new (
    description?: string,
  ) => Error;
}

/** The parts of an oidc-provider token `extraTokenClaims` reads. */
interface IssuedToken {
  readonly clientId: string;
}

let oidcProviderModule: Promise<OidcProviderModule> | undefined;

/**
 * Imports oidc-provider once. It prints an "unsupported runtime" warning when loaded on
 * Node 20; those start-up lines (prefixed `oidc-provider `) are dropped, nothing else is.
 */
function loadOidcProvider(): Promise<OidcProviderModule> {
  oidcProviderModule ??= (async () => {
    // A non-literal specifier: the package has no type declarations, so its shape is
    // asserted by OidcProviderModule instead.
    const specifier: string = "oidc-provider";
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (typeof args[0] === "string" && args[0].startsWith("oidc-provider ")) {
        return;
      }
      warn.apply(console, args);
    };
    try {
      const loaded = (await import(specifier)) as {
        Provider: OidcProviderModule["Provider"];
        errors: { InvalidTarget: OidcProviderModule["InvalidTarget"] };
      };
      return { Provider: loaded.Provider, InvalidTarget: loaded.errors.InvalidTarget };
    } finally {
      console.warn = warn;
    }
  })();
  return oidcProviderModule;
}

async function providerConfiguration(input: {
  readonly clients: readonly LocalClient[];
  readonly audience: string;
  readonly resource: string;
  readonly InvalidTarget: OidcProviderModule["InvalidTarget"];
  readonly extraTokenClaims: (clientId: string) => Record<string, unknown> | undefined;
}): Promise<Record<string, unknown>> {
  const { audience, resource, InvalidTarget } = input;
  return {
    adapter: createMemoryAdapter(),
    jwks: { keys: [await generateSigningKey()] },
    clients: input.clients.map((client) => ({
      client_id: client.id,
      client_secret: client.secret,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      // oidc-provider accepts client_secret_post for a client registered with _basic and vice versa.
      token_endpoint_auth_method: "client_secret_basic",
    })),
    clientAuthMethods: ["client_secret_basic", "client_secret_post"],
    clientDefaults: {
      grant_types: ["client_credentials"],
      response_types: [],
      id_token_signed_response_alg: "ES256",
      token_endpoint_auth_method: "client_secret_basic",
    },
    enabledJWA: { idTokenSigningAlgValues: ["ES256"] },
    responseTypes: ["none"],
    scopes: [],
    claims: { openid: ["sub"] },
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      userinfo: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx: unknown, indicator: string) => {
          if (indicator !== resource) {
            throw new InvalidTarget(`this issuer only issues tokens for ${resource}`);
          }
          return {
            scope: "",
            audience,
            accessTokenFormat: "jwt",
            accessTokenTTL: LOCAL_TOKEN_LIFETIME_SECONDS,
            jwt: { sign: { alg: "ES256" } },
          };
        },
      },
    },
    extraTokenClaims: async (_ctx: unknown, token: IssuedToken) => input.extraTokenClaims(token.clientId),
    ttl: { ClientCredentials: LOCAL_TOKEN_LIFETIME_SECONDS },
    clientBasedCORS: () => false,
    findAccount: async () => undefined,
    renderError: async (ctx: { type: string; body: unknown }, out: unknown) => {
      ctx.type = "json";
      ctx.body = out;
    },
  };
}

async function generateSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: "ES256", use: "sig" };
}

/**
 * oidc-provider's storage adapter. With JWT access tokens and static clients nothing is
 * stored in practice; an adapter is still given so the provider does not fall back to (and
 * warn about) its development one.
 */
function createMemoryAdapter(): new (name: string) => unknown {
  const store = new Map<string, { payload: Record<string, unknown>; expiresAt: number }>();
  const get = (key: string): Record<string, unknown> | undefined => {
    const entry = store.get(key);
    if (entry !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry?.payload;
  };
  return class MemoryAdapter {
    readonly #name: string;
    constructor(name: string) {
      this.#name = name;
    }
    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void> {
      const expiresAt = expiresIn === undefined ? Number.POSITIVE_INFINITY : Date.now() + expiresIn * 1000;
      store.set(`${this.#name}:${id}`, { payload, expiresAt });
    }
    async find(id: string): Promise<Record<string, unknown> | undefined> {
      return get(`${this.#name}:${id}`);
    }
    async findByUid(): Promise<undefined> {
      return undefined;
    }
    async findByUserCode(): Promise<undefined> {
      return undefined;
    }
    async consume(id: string): Promise<void> {
      const payload = get(`${this.#name}:${id}`);
      if (payload !== undefined) {
        payload.consumed = Math.floor(Date.now() / 1000);
      }
    }
    async destroy(id: string): Promise<void> {
      store.delete(`${this.#name}:${id}`);
    }
    async revokeByGrantId(): Promise<void> {}
  };
}
