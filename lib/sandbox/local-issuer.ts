import { randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from "jose";
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
  /**
   * `/users` only: where a user (with its own client credentials) gets a delegation token for one
   * customer-facing agent, sent as the form field `actor`. The token carries
   * `act: {sub: <agent>, iss: <customer-agents issuer>}`.
   */
  readonly delegationEndpoint?: string;
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
  let delegate: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const server = createServer((req, res) => {
    if (delegate !== undefined && (req.url ?? "").split("?", 1)[0] === `${USERS_PATH}${DELEGATION_PATH}`) {
      delegate(req, res);
      return;
    }
    route(handlers, req, res);
  });
  const port = await listen(server, options.port ?? DEFAULT_PORT, host);
  const base = `http://${host}:${port}`;

  try {
    const usersById = new Map(options.users.map((user) => [user.id, user]));
    const staffById = new Map((options.staff ?? []).map((member) => [member.id, member]));
    const mount = async (
      path: string,
      clients: readonly LocalClient[],
      extraTokenClaims: (clientId: string) => Record<string, unknown> | undefined,
      signingKey?: JWK,
    ): Promise<LocalIssuerEndpoints> => {
      const issuer = `${base}${path}`;
      const configuration = await providerConfiguration({
        clients,
        audience,
        resource,
        InvalidTarget,
        extraTokenClaims,
        signingKey: signingKey ?? (await generateSigningKey()),
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

    const usersKey = await generateSigningKey();
    const customerAgents = await mount("/customer-agents", options.customerAgents, () => undefined);
    const users = await mount(
      USERS_PATH,
      options.users,
      (clientId) => userClaims(usersById.get(clientId)),
      usersKey,
    );
    const issuers = {
      workforceAgents: await mount("/agents", options.workforceAgents, () => undefined),
      customerAgents,
      users: { ...users, delegationEndpoint: `${users.issuer}${DELEGATION_PATH}` },
      staff: await mount("/staff", options.staff ?? [], (clientId) => staffClaims(staffById.get(clientId))),
    };
    delegate = delegationHandler({
      issuer: users.issuer,
      audience,
      signingKey: usersKey,
      users: usersById,
      actorIssuer: customerAgents.issuer,
      actors: new Set(options.customerAgents.map((agent) => agent.id)),
    });

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

const USERS_PATH = "/users";
const DELEGATION_PATH = "/delegation";

/**
 * The `/users/delegation` endpoint: a demo user, authenticated by its client credentials (basic or
 * form), gets a token for one customer-facing agent to present as `subjectToken` — what a real
 * identity provider's RFC 8693 token exchange (or consent flow) yields. It carries
 * `act: {sub: <agent>, iss: <customer-agents issuer>}`, a fresh `jti`, and no `groups`, signed
 * with the same key as the issuer's other tokens.
 */
function delegationHandler(input: {
  readonly issuer: string;
  readonly audience: string;
  readonly signingKey: JWK;
  readonly users: ReadonlyMap<string, LocalUser>;
  readonly actorIssuer: string;
  readonly actors: ReadonlySet<string>;
}): (req: IncomingMessage, res: ServerResponse) => void {
  const reply = (res: ServerResponse, status: number, body: Record<string, unknown>) => {
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(JSON.stringify(body));
  };
  const key = importJWK(input.signingKey, "ES256");
  return (req, res) => {
    if (req.method !== "POST")
      return reply(res, 405, { error: "invalid_request", error_description: "POST only" });
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      void (async () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8").slice(0, 8192));
        let clientId = form.get("client_id") ?? "";
        let secret = form.get("client_secret") ?? "";
        const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? "");
        if (basic?.[1]) {
          const [id = "", pass = ""] = Buffer.from(basic[1], "base64").toString("utf8").split(":");
          clientId = decodeURIComponent(id.replace(/\+/g, " "));
          secret = decodeURIComponent(pass.replace(/\+/g, " "));
        }
        const user = input.users.get(clientId);
        if (!user || !sameSecret(user.secret, secret)) {
          return reply(res, 401, {
            error: "invalid_client",
            error_description: "client authentication failed",
          });
        }
        const actor = form.get("actor") ?? "";
        if (!input.actors.has(actor)) {
          return reply(res, 400, {
            error: "invalid_request",
            error_description: "actor must name a customer-facing agent of this sandbox",
          });
        }
        const token = await new SignJWT({
          tenant: user.tenant,
          preferred_username: user.id,
          client_id: user.id,
          act: { sub: actor, iss: input.actorIssuer },
        })
          .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: input.signingKey.kid as string })
          .setIssuer(input.issuer)
          .setSubject(user.id)
          .setAudience(input.audience)
          .setIssuedAt()
          .setExpirationTime(`${LOCAL_TOKEN_LIFETIME_SECONDS}s`)
          .setJti(randomUUID())
          .sign(await key);
        reply(res, 200, {
          access_token: token,
          token_type: "Bearer",
          expires_in: LOCAL_TOKEN_LIFETIME_SECONDS,
        });
      })().catch(() => reply(res, 500, { error: "server_error" }));
    });
  };
}

function sameSecret(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
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
  readonly signingKey: JWK;
}): Promise<Record<string, unknown>> {
  const { audience, resource, InvalidTarget } = input;
  return {
    adapter: createMemoryAdapter(),
    jwks: { keys: [{ ...input.signingKey }] },
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
