import { createServer } from "node:net";
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { ConfigError } from "../../../lib/domain/errors.js";
import { parseIssuerConfig } from "../../../lib/identity/issuers.js";
import { fetchClientCredentialsToken, TokenRequestError } from "../../../lib/sandbox/client-credentials.js";
import {
  type LocalIssuer,
  type LocalIssuerEndpoints,
  startLocalIssuer,
} from "../../../lib/sandbox/local-issuer.js";
import { localIssuerProfiles } from "../../../lib/sandbox/local-issuer-profiles.js";

const AGENT = { id: "agent-a", secret: "agent-a-secret-0123456789" };
const SUPPORT_BOT = { id: "support-bot", secret: "support-bot-secret-0123456789" };
const ALICE = {
  id: "alice",
  secret: "alice-secret-0123456789",
  tenant: "acme",
  email: "alice@acme.example",
  groups: ["jitv-approvers"],
};

async function verify(endpoints: LocalIssuerEndpoints, token: string) {
  return jwtVerify(token, createRemoteJWKSet(new URL(endpoints.jwksUri)), {
    issuer: endpoints.issuer,
    audience: "jitv",
    algorithms: ["ES256"],
  });
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
  });
}

describe("local issuer", () => {
  let local: LocalIssuer;

  beforeAll(async () => {
    local = await startLocalIssuer({
      port: 0,
      workforceAgents: [AGENT],
      customerAgents: [SUPPORT_BOT],
      users: [ALICE],
    });
  });

  afterAll(async () => {
    await local.close();
  });

  it("serves three issuers whose discovery documents name themselves exactly", async () => {
    const base = `http://127.0.0.1:${local.port}`;
    expect(local.port).toBeGreaterThan(0);
    for (const [name, path] of [
      ["workforceAgents", "/agents"],
      ["customerAgents", "/customer-agents"],
      ["users", "/users"],
    ] as const) {
      const endpoints = local.issuers[name];
      expect(endpoints.issuer).toBe(`${base}${path}`);
      const response = await fetch(`${base}${path}/.well-known/openid-configuration`);
      expect(response.status).toBe(200);
      const discovery = (await response.json()) as Record<string, unknown>;
      expect(discovery).toMatchObject({
        issuer: `${base}${path}`,
        jwks_uri: endpoints.jwksUri,
        token_endpoint: endpoints.tokenEndpoint,
        grant_types_supported: ["client_credentials"],
      });
      expect(discovery.token_endpoint_auth_methods_supported).toEqual(
        expect.arrayContaining(["client_secret_basic", "client_secret_post"]),
      );
      expect(discovery.token_endpoint_auth_methods_supported).toHaveLength(2);
    }
  });

  it("issues ES256 JWT access tokens for workforce agents (client_secret_basic)", async () => {
    // The issuer's clock is the test's: a token is issued at exactly this second.
    const issuedAt = Date.parse("2031-05-06T07:08:09Z") / 1000;
    vi.useFakeTimers({ toFake: ["Date"], now: issuedAt * 1000 });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const endpoints = local.issuers.workforceAgents;
    const token = await fetchClientCredentialsToken({
      tokenEndpoint: endpoints.tokenEndpoint,
      clientId: AGENT.id,
      clientSecret: AGENT.secret,
    });
    const { payload, protectedHeader } = await verify(endpoints, token);
    expect(protectedHeader).toMatchObject({ alg: "ES256", typ: "at+jwt" });
    expect(protectedHeader.kid).toEqual(expect.any(String));
    expect(payload).toMatchObject({ iss: endpoints.issuer, sub: AGENT.id, aud: "jitv", client_id: AGENT.id });
    expect(payload.jti).toEqual(expect.any(String));
    expect(payload.iat).toBe(issuedAt);
    expect(payload.exp).toBe(issuedAt + 600);
    expect(payload).not.toHaveProperty("tenant");
  });

  it("issues tokens for customer-facing agents (client_secret_post), signed with that issuer's own key", async () => {
    const endpoints = local.issuers.customerAgents;
    const token = await fetchClientCredentialsToken({
      tokenEndpoint: endpoints.tokenEndpoint,
      clientId: SUPPORT_BOT.id,
      clientSecret: SUPPORT_BOT.secret,
      authMethod: "client_secret_post",
    });
    const { payload } = await verify(endpoints, token);
    expect(payload).toMatchObject({ iss: endpoints.issuer, sub: SUPPORT_BOT.id, aud: "jitv" });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(600);

    // Same audience, but neither the workforce issuer's name nor its keys fit this token.
    const workforce = local.issuers.workforceAgents;
    await expect(
      jwtVerify(token, createRemoteJWKSet(new URL(workforce.jwksUri)), { algorithms: ["ES256"] }),
    ).rejects.toThrow(/no applicable key|signature/i);
  });

  it("issues user tokens carrying tenant, groups, email and preferred_username", async () => {
    const endpoints = local.issuers.users;
    const token = await fetchClientCredentialsToken({
      tokenEndpoint: endpoints.tokenEndpoint,
      clientId: ALICE.id,
      clientSecret: ALICE.secret,
    });
    const { payload } = await verify(endpoints, token);
    expect(payload).toMatchObject({
      iss: endpoints.issuer,
      sub: ALICE.id,
      aud: "jitv",
      tenant: "acme",
      groups: ["jitv-approvers"],
      email: "alice@acme.example",
      preferred_username: "alice",
    });
    expect(payload.jti).toEqual(expect.any(String));
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(600);
  });

  it("gives every token its own jti", async () => {
    const request = {
      tokenEndpoint: local.issuers.workforceAgents.tokenEndpoint,
      clientId: AGENT.id,
      clientSecret: AGENT.secret,
    };
    const [first, second] = await Promise.all([
      fetchClientCredentialsToken(request),
      fetchClientCredentialsToken(request),
    ]);
    const jtis = [first, second].map((token) => JSON.parse(atob(token.split(".")[1] ?? "")).jti);
    expect(new Set(jtis).size).toBe(2);
  });

  it("rejects a wrong secret with invalid_client, without echoing the secret", async () => {
    for (const authMethod of ["client_secret_basic", "client_secret_post"] as const) {
      const wrongSecret = "wrong-secret-do-not-echo";
      const failure = await fetchClientCredentialsToken({
        tokenEndpoint: local.issuers.workforceAgents.tokenEndpoint,
        clientId: AGENT.id,
        clientSecret: wrongSecret,
        authMethod,
      }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(TokenRequestError);
      const error = failure as TokenRequestError;
      expect(error).toMatchObject({ status: 401, oauthError: "invalid_client" });
      expect(error.message).toContain("HTTP 401 invalid_client");
      expect(error.message).toContain('"agent-a"');
      expect(error.message).not.toContain(wrongSecret);
    }
  });

  it("does not let a client of one issuer authenticate at another", async () => {
    await expect(
      fetchClientCredentialsToken({
        tokenEndpoint: local.issuers.users.tokenEndpoint,
        clientId: AGENT.id,
        clientSecret: AGENT.secret,
      }),
    ).rejects.toMatchObject({ status: 401, oauthError: "invalid_client" });
  });

  it("accepts its own resource indicator and refuses any other with invalid_target", async () => {
    const endpoints = local.issuers.workforceAgents;
    const token = await fetchClientCredentialsToken({
      tokenEndpoint: endpoints.tokenEndpoint,
      clientId: AGENT.id,
      clientSecret: AGENT.secret,
      resource: local.resource,
    });
    expect((await verify(endpoints, token)).payload.aud).toBe("jitv");

    await expect(
      fetchClientCredentialsToken({
        tokenEndpoint: endpoints.tokenEndpoint,
        clientId: AGENT.id,
        clientSecret: AGENT.secret,
        resource: "https://other-api.example",
      }),
    ).rejects.toMatchObject({ status: 400, oauthError: "invalid_target" });
  });

  it("serves nothing but discovery, JWKS and the token endpoint", async () => {
    const base = `http://127.0.0.1:${local.port}`;
    for (const path of ["/agents/auth?client_id=agent-a", "/users/me", "/agents", "/", "/other/token"]) {
      const response = await fetch(`${base}${path}`, { redirect: "manual" });
      expect(response.status, path).toBe(404);
    }
  });

  it("mints a user's delegation token for one customer-facing agent, carrying act", async () => {
    const users = local.issuers.users;
    const token = await fetchClientCredentialsToken({
      tokenEndpoint: users.delegationEndpoint as string,
      clientId: ALICE.id,
      clientSecret: ALICE.secret,
      actor: SUPPORT_BOT.id,
    });
    const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(users.jwksUri)), {
      issuer: users.issuer,
      audience: local.audience,
      algorithms: ["ES256"],
    });
    expect(protectedHeader.typ).toBe("at+jwt");
    expect(payload).toMatchObject({
      sub: ALICE.id,
      tenant: ALICE.tenant,
      act: { sub: SUPPORT_BOT.id, iss: local.issuers.customerAgents.issuer },
      jti: expect.any(String),
    });
    expect(payload.groups).toBeUndefined();
    const request = {
      tokenEndpoint: users.delegationEndpoint as string,
      clientId: ALICE.id,
      actor: SUPPORT_BOT.id,
    };
    await expect(fetchClientCredentialsToken({ ...request, clientSecret: "wrong" })).rejects.toMatchObject({
      status: 401,
      oauthError: "invalid_client",
    });
    await expect(
      fetchClientCredentialsToken({ ...request, clientSecret: ALICE.secret, actor: AGENT.id }),
    ).rejects.toMatchObject({ status: 400, oauthError: "invalid_request" });
  });

  it("describes itself as an issuers file the issuer-profile loader accepts", () => {
    const config = parseIssuerConfig(localIssuerProfiles(local, [ALICE.tenant]));
    const users = local.issuers.users.issuer;
    expect(config.issuers.map((p) => [p.name, p.issuer, p.jwksUri, p.kind, p.zone])).toEqual([
      [
        "local-agents",
        local.issuers.workforceAgents.issuer,
        local.issuers.workforceAgents.jwksUri,
        "agent",
        "workforce",
      ],
      [
        "local-customer-agents",
        local.issuers.customerAgents.issuer,
        local.issuers.customerAgents.jwksUri,
        "agent",
        "customer",
      ],
      ["local-users", users, local.issuers.users.jwksUri, "user", "customer"],
      ["local-staff", local.issuers.staff.issuer, local.issuers.staff.jwksUri, "user", "workforce"],
    ]);
    for (const profile of config.issuers) {
      expect(profile).toMatchObject({
        audiences: ["jitv"],
        algorithms: ["ES256"],
        maxTokenAgeSeconds: 3600,
        clockToleranceSeconds: 30,
      });
    }
    expect(config.issuers[2]?.tenants).toEqual([ALICE.tenant]);
    expect(config.issuers[2]?.claims).toEqual({
      agent: "sub",
      user: "sub",
      tenant: "tenant",
      groups: "groups",
    });
    // Each zone's user issuer has its own admins and approvers.
    const staff = local.issuers.staff.issuer;
    expect(config.admins).toEqual([
      { issuer: staff, claim: "groups", values: ["jitv-admins"] },
      { issuer: users, claim: "groups", values: ["jitv-admins"] },
    ]);
    expect(config.approvers).toEqual([
      { issuer: staff, claim: "groups", values: ["jitv-approvers"] },
      { issuer: users, claim: "groups", values: ["jitv-approvers"] },
    ]);
  });
});

describe("local issuer lifecycle", () => {
  it("frees its port on close(), and close() can be called twice", async () => {
    const local = await startLocalIssuer({
      port: 0,
      workforceAgents: [AGENT],
      customerAgents: [],
      users: [],
    });
    const { port } = local;
    // A kept-alive connection must not hold close() open.
    await fetchClientCredentialsToken({
      tokenEndpoint: local.issuers.workforceAgents.tokenEndpoint,
      clientId: AGENT.id,
      clientSecret: AGENT.secret,
    });
    expect(await portIsFree(port)).toBe(false);

    await local.close();
    await local.close();

    expect(await portIsFree(port)).toBe(true);
    await expect(
      fetchClientCredentialsToken({
        tokenEndpoint: local.issuers.workforceAgents.tokenEndpoint,
        clientId: AGENT.id,
        clientSecret: AGENT.secret,
      }),
    ).rejects.toThrow(/could not be reached \(ECONNREFUSED\)/);
  });

  it("fails to start on a port already in use", async () => {
    const first = await startLocalIssuer({ port: 0, workforceAgents: [], customerAgents: [], users: [] });
    try {
      await expect(
        startLocalIssuer({ port: first.port, workforceAgents: [], customerAgents: [], users: [] }),
      ).rejects.toMatchObject({ code: "EADDRINUSE" });
    } finally {
      await first.close();
    }
  });

  it("refuses duplicate client ids and empty secrets before listening", async () => {
    await expect(
      startLocalIssuer({ port: 0, workforceAgents: [AGENT, AGENT], customerAgents: [], users: [] }),
    ).rejects.toThrow(ConfigError);
    await expect(
      startLocalIssuer({
        port: 0,
        workforceAgents: [],
        customerAgents: [{ id: "x", secret: "" }],
        users: [],
      }),
    ).rejects.toThrow(/"x" has an empty secret/);
  });

  it("uses a configured audience in tokens and profiles", async () => {
    const local = await startLocalIssuer({
      port: 0,
      workforceAgents: [AGENT],
      customerAgents: [],
      users: [],
      audience: "https://jitv.example",
    });
    try {
      const endpoints = local.issuers.workforceAgents;
      const token = await fetchClientCredentialsToken({
        tokenEndpoint: endpoints.tokenEndpoint,
        clientId: AGENT.id,
        clientSecret: AGENT.secret,
        resource: "https://jitv.example",
      });
      expect(decodeProtectedHeader(token).alg).toBe("ES256");
      const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(endpoints.jwksUri)), {
        issuer: endpoints.issuer,
        audience: "https://jitv.example",
        algorithms: ["ES256"],
      });
      expect(payload.sub).toBe(AGENT.id);
      expect(parseIssuerConfig(localIssuerProfiles(local, [ALICE.tenant])).issuers[0]?.audiences).toEqual([
        "https://jitv.example",
      ]);
    } finally {
      await local.close();
    }
  });
});
