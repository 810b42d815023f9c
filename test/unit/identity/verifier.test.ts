import {
  CompactEncrypt,
  type CryptoKey,
  createLocalJWKSet,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  importJWK,
} from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidTokenError, UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import type { IssuerProfile } from "../../../lib/identity/issuers.js";
import { RemoteJwks } from "../../../lib/identity/jwks.js";
import { MAX_TOKEN_BYTES, TokenVerifier, type VerifyTokenOptions } from "../../../lib/identity/verifier.js";
import { type ProfileOverrides, startTestIssuer, type TestIssuer } from "../../support/test-issuer.js";

const now = () => Math.floor(Date.now() / 1000);

let rsa: TestIssuer;
let ec: TestIssuer;
let verifier: TokenVerifier;

beforeAll(async () => {
  [rsa, ec] = await Promise.all([startTestIssuer({ alg: "RS256" }), startTestIssuer({ alg: "ES256" })]);
  verifier = new TokenVerifier({ config: { issuers: [rsa.profile()] } });
});

afterAll(async () => {
  await Promise.all([rsa.close(), ec.close()]);
});

function verifierFor(issuer: TestIssuer, overrides: ProfileOverrides = {}): TokenVerifier {
  return new TokenVerifier({ config: { issuers: [issuer.profile(overrides)] } });
}

/** Asserts the token is refused as `invalid_token` with `message`, and that the message leaks nothing of it. */
async function expectRefused(
  token: string,
  message: string | RegExp,
  options: { verifier?: TokenVerifier; verify?: VerifyTokenOptions; secrets?: string[] } = {},
): Promise<void> {
  const error = await (options.verifier ?? verifier).verify(token, options.verify).then(
    () => {
      throw new Error("expected the token to be refused");
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InvalidTokenError);
  const { code, status, message: actual } = error as InvalidTokenError;
  expect(code).toBe("invalid_token");
  expect(status).toBe(401);
  // jose errors hold the whole payload; none may ride along as a cause into logs.
  expect((error as Error).cause).toBeUndefined();
  if (typeof message === "string") expect(actual).toBe(message);
  else expect(actual).toMatch(message);
  if (token.length >= 16) expect(actual).not.toContain(token.slice(0, 16));
  for (const part of token.split(".")) if (part.length >= 8) expect(actual).not.toContain(part);
  for (const secret of options.secrets ?? []) expect(actual).not.toContain(secret);
}

describe("TokenVerifier: accepted tokens", () => {
  it("verifies an RS256 agent token and maps custom agent, tenant and group claims", async () => {
    const v = verifierFor(rsa, {
      name: "ci",
      zone: "customer",
      claims: { agent: "agent_id", tenant: "org", groups: "roles" },
    });
    const exp = now() + 300;
    const token = await rsa.sign({
      sub: "repo:acme/app:ref:refs/heads/main",
      agent_id: "deploy-bot",
      org: "acme",
      roles: ["deployers", "readers"],
      jti: "jti-1",
      exp,
    });
    const identity = await v.verify(token, { kind: "agent" });
    expect(identity).toEqual({
      profile: "ci",
      issuer: rsa.issuer,
      kind: "agent",
      zone: "customer",
      subject: "repo:acme/app:ref:refs/heads/main",
      id: "deploy-bot",
      tenant: "acme",
      groups: ["deployers", "readers"],
      jti: "jti-1",
      expiresAt: exp,
      delegated: false,
      claims: expect.objectContaining({ agent_id: "deploy-bot", org: "acme", iss: rsa.issuer }),
    });
  });

  it("verifies an ES256 user token with the user claim mapped", async () => {
    const v = verifierFor(ec, { kind: "user", claims: { user: "email", tenant: "tenant" } });
    const token = await ec.sign({ sub: "0001", email: "alice@example.com", tenant: "acme" });
    const identity = await v.verify(token, { kind: "user" });
    expect(identity).toMatchObject({
      kind: "user",
      subject: "0001",
      id: "alice@example.com",
      tenant: "acme",
    });
    expect(identity.groups).toEqual([]);
    expect(identity.actor).toBeUndefined();
  });

  it("uses sub as the id by default and leaves tenant out when the claim is absent", async () => {
    const v = verifierFor(rsa, { claims: { tenant: "tenant" } });
    const identity = await v.verify(await rsa.sign({ sub: "agent-a", jti: undefined }));
    expect(identity.id).toBe("agent-a");
    expect(identity).not.toHaveProperty("tenant");
    expect(identity).not.toHaveProperty("jti");
  });

  it("accepts an exp just past within the clock tolerance", async () => {
    await expect(verifier.verify(await rsa.sign({ exp: now() - 10 }))).resolves.toMatchObject({
      id: "test-agent",
    });
  });

  it("accepts a token whose aud array includes a configured audience", async () => {
    await expect(verifier.verify(await rsa.sign({ aud: ["other", "jitv"] }))).resolves.toMatchObject({
      subject: "test-agent",
    });
  });
});

describe("TokenVerifier: refused tokens", () => {
  it("refuses alg none", async () => {
    await expectRefused(await rsa.sign({}, { alg: "none" }), "unsigned tokens (alg none) are refused");
  });

  it("refuses HS256 signed with the issuer's RSA public key bytes", async () => {
    const pem = await exportSPKI((await importJWK(rsa.publicJwk, "RS256")) as CryptoKey);
    const token = await rsa.sign({}, { alg: "HS256", key: new TextEncoder().encode(pem) });
    await expectRefused(token, 'token algorithm is not allowed for issuer profile "test"');
  });

  it("refuses an algorithm the profile does not list, even if asymmetric", async () => {
    const v = verifierFor(rsa, { algorithms: ["PS256"] });
    await expectRefused(await rsa.sign({}), 'token algorithm is not allowed for issuer profile "test"', {
      verifier: v,
    });
  });

  it("refuses a token carrying its own jwk", async () => {
    const token = await rsa.sign({}, { header: { jwk: rsa.publicJwk } });
    await expectRefused(
      token,
      "token header carries its own key (jwk); keys come only from the issuer's JWKS",
    );
  });

  it.each(["jku", "x5u"])("refuses a %s header", async (name) => {
    const token = await rsa.sign({}, { header: { [name]: "https://attacker.example/keys" } });
    await expectRefused(
      token,
      `token header carries its own key (${name}); keys come only from the issuer's JWKS`,
      {
        secrets: ["attacker"],
      },
    );
  });

  it("refuses an x5c header", async () => {
    const token = await rsa.sign({}, { header: { x5c: ["MIIB"] } });
    await expectRefused(token, /carries its own key \(x5c\)/);
  });

  it("refuses an unknown crit extension", async () => {
    const token = await rsa.sign({}, { header: { crit: ["urn:example:ext"], "urn:example:ext": true } });
    await expectRefused(token, "token header declares critical extensions (crit), which are not supported");
  });

  it("refuses a missing exp", async () => {
    await expectRefused(await rsa.sign({ exp: undefined }), "token has no exp claim");
  });

  it("refuses an expired token", async () => {
    await expectRefused(await rsa.sign({ iat: now() - 600, exp: now() - 60 }), "token has expired");
  });

  it("refuses a missing iat", async () => {
    await expectRefused(await rsa.sign({ iat: undefined }), "token has no iat claim");
  });

  it("refuses a missing sub", async () => {
    await expectRefused(await rsa.sign({ sub: undefined }), "token has no sub claim");
  });

  it("refuses a future nbf beyond the tolerance", async () => {
    await expectRefused(
      await rsa.sign({ nbf: now() + 120 }),
      "token is not valid yet (nbf is in the future)",
    );
  });

  it("refuses a future iat beyond the tolerance", async () => {
    await expectRefused(
      await rsa.sign({ iat: now() + 120, exp: now() + 600 }),
      "token was issued in the future (iat)",
    );
  });

  it("refuses an untrusted issuer without echoing it", async () => {
    await expectRefused(await rsa.sign({ iss: "https://evil.example" }), "token issuer is not trusted", {
      secrets: ["evil"],
    });
  });

  it("refuses an issuer that differs only by a trailing slash", async () => {
    await expectRefused(await rsa.sign({ iss: `${rsa.issuer}/` }), "token issuer is not trusted");
  });

  it("refuses a missing iss", async () => {
    await expectRefused(await rsa.sign({ iss: undefined }), "token has no iss claim");
  });

  it("refuses a wrong audience without echoing it", async () => {
    await expectRefused(
      await rsa.sign({ aud: "someone-else" }),
      'token audience is not accepted by issuer profile "test"',
      {
        secrets: ["someone-else"],
      },
    );
  });

  it("refuses a missing audience", async () => {
    await expectRefused(await rsa.sign({ aud: undefined }), "token has no aud claim");
  });

  it("refuses a token older than maxTokenAgeSeconds", async () => {
    const v = verifierFor(rsa, { maxTokenAgeSeconds: 600, clockToleranceSeconds: 0 });
    await expectRefused(
      await rsa.sign({ iat: now() - 601, exp: now() + 300 }),
      'token is older than the 600 s allowed by issuer profile "test"',
      { verifier: v },
    );
  });

  it("refuses a token larger than 8 KiB before parsing it", async () => {
    const token = await rsa.sign({ padding: "x".repeat(MAX_TOKEN_BYTES) });
    expect(token.length).toBeGreaterThan(MAX_TOKEN_BYTES);
    await expectRefused(token, "token is larger than 8 KiB");
  });

  it("refuses a compact JWE", async () => {
    const jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify({ sub: "agent-a" })))
      .setProtectedHeader({ alg: "dir", enc: "A256GCM" })
      .encrypt(new Uint8Array(32));
    expect(jwe.split(".")).toHaveLength(5);
    await expectRefused(jwe, "encrypted tokens (JWE) are not accepted");
  });

  it("refuses something that is not a compact JWS", async () => {
    await expectRefused("abc.def", "token is not a compact JWS (three dot-separated parts)");
    await expectRefused("not-base64!.e30.sig", "token header is malformed");
    await expectRefused("", "token is missing");
  });

  it("refuses a signature made by another key under the issuer's kid", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    await expectRefused(
      await rsa.sign({}, { key: privateKey }),
      'token signature is invalid for issuer profile "test"',
    );
  });

  it("refuses an agent token where a user token is required", async () => {
    await expectRefused(
      await rsa.sign({}),
      'issuer profile "test" issues agent tokens; a user token is required',
      { verify: { kind: "user" } },
    );
  });

  it("refuses mapped claims that are not strings", async () => {
    const v = verifierFor(rsa, { claims: { agent: "agent_id", tenant: "org", groups: "roles" } });
    await expectRefused(
      await rsa.sign({ agent_id: 42, org: "acme" }),
      'token claim "agent_id" (agent id for issuer profile "test") is missing or not a string',
      { verifier: v },
    );
    await expectRefused(
      await rsa.sign({ agent_id: "bot", org: ["acme"] }),
      'token claim "org" (tenant for issuer profile "test") is not a string',
      { verifier: v },
    );
    await expectRefused(
      await rsa.sign({ agent_id: "bot", roles: "admins" }),
      'token claim "roles" (groups for issuer profile "test") is not a list of strings',
      { verifier: v },
    );
    await expectRefused(
      await rsa.sign({ agent_id: "bot", roles: ["ok", 1] }),
      /token claim "roles" \(groups/,
      { verifier: v },
    );
  });

  it("refuses a missing mapped id claim", async () => {
    const v = verifierFor(rsa, { claims: { agent: "agent_id" } });
    await expectRefused(await rsa.sign({}), /token claim "agent_id" \(agent id/, { verifier: v });
  });
});

describe("TokenVerifier: keys", () => {
  function clockedVerifier(issuer: TestIssuer, profile: IssuerProfile) {
    let offsetMs = 0;
    const clock = () => new Date(Date.now() + offsetMs);
    const v = new TokenVerifier({
      config: { issuers: [profile] },
      jwks: (p) => new RemoteJwks(p, { now: clock }).getKey,
    });
    return { verifier: v, advance: (ms: number) => (offsetMs += ms), issuer };
  }

  it("refetches once for an unknown kid and not again within the cooldown", async () => {
    const idp = await startTestIssuer();
    try {
      const { verifier: v, advance } = clockedVerifier(idp, idp.profile());
      await v.verify(await idp.sign({}));
      expect(idp.jwksRequests()).toBe(1);
      advance(31_000);
      await expectRefused(
        await idp.sign({}, { header: { kid: "unknown-a" } }),
        "token signed with an unknown key",
        {
          verifier: v,
        },
      );
      expect(idp.jwksRequests()).toBe(2);
      await expectRefused(
        await idp.sign({}, { header: { kid: "unknown-b" } }),
        "token signed with an unknown key",
        {
          verifier: v,
        },
      );
      expect(idp.jwksRequests()).toBe(2);
    } finally {
      await idp.close();
    }
  });

  it("picks up a rotated key after the cooldown", async () => {
    const idp = await startTestIssuer({ alg: "ES256" });
    try {
      const { verifier: v, advance } = clockedVerifier(idp, idp.profile());
      await v.verify(await idp.sign({}));
      const oldKid = idp.kid;
      await idp.rotate();
      expect(idp.kid).not.toBe(oldKid);
      const rotated = await idp.sign({});
      // Within the cooldown the new kid is unknown and nothing is fetched.
      await expectRefused(rotated, "token signed with an unknown key", { verifier: v });
      expect(idp.jwksRequests()).toBe(1);
      advance(30_000);
      await expect(v.verify(rotated)).resolves.toMatchObject({ id: "test-agent" });
      expect(idp.jwksRequests()).toBe(2);
    } finally {
      await idp.close();
    }
  });

  it("fetches keys only from the configured jwksUri, once per profile", async () => {
    const v = verifierFor(ec);
    const before = ec.jwksRequests();
    await v.verify(await ec.sign({}));
    await v.verify(await ec.sign({}));
    expect(ec.jwksRequests()).toBe(before + 1);
  });

  it("tries each published key when the token has no kid and several keys fit", async () => {
    const other = await generateKeyPair("RS256");
    const { kid: _kid, ...withoutKid } = rsa.publicJwk;
    const keys = { keys: [{ ...(await exportJWK(other.publicKey)), alg: "RS256" }, withoutKid] };
    const v = new TokenVerifier({
      config: { issuers: [rsa.profile()] },
      jwks: () => createLocalJWKSet(keys),
    });
    const token = await rsa.sign({}, { header: { kid: undefined } });
    await expect(v.verify(token)).resolves.toMatchObject({ id: "test-agent" });
    const { privateKey: stranger } = await generateKeyPair("RS256");
    await expectRefused(
      await rsa.sign({}, { header: { kid: undefined }, key: stranger }),
      'token signature is invalid for issuer profile "test"',
      { verifier: v },
    );
  });

  it("reports an unreachable JWKS as upstream_unavailable, not invalid_token", async () => {
    const idp = await startTestIssuer();
    const token = await idp.sign({});
    const profile = idp.profile();
    await idp.close();
    const v = new TokenVerifier({ config: { issuers: [profile] } });
    const error = await v.verify(token).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamUnavailableError);
    expect(error).toMatchObject({ code: "upstream_unavailable" });
  });
});

describe("TokenVerifier: delegation tokens, tenants, typ and azp", () => {
  const userProfile = (overrides: ProfileOverrides = {}) =>
    verifierFor(ec, { kind: "user", zone: "customer", claims: { tenant: "tenant" }, ...overrides });

  it("reads act {sub, iss} from a subject token and marks it delegated", async () => {
    const token = await ec.sign({ sub: "alice", tenant: "acme", act: { sub: "bot", iss: "https://agents" } });
    const identity = await userProfile().verify(token, { kind: "user", use: "subject" });
    expect(identity).toMatchObject({ actor: { sub: "bot", iss: "https://agents" }, delegated: true });
  });

  it("refuses a delegation token as a bearer token, and a plain token as a subject token", async () => {
    const v = userProfile({ delegation: { audience: "jitv-delegation" } });
    const withAct = await ec.sign({ sub: "alice", tenant: "acme", act: { sub: "bot" } });
    await expectRefused(withAct, /not accepted as a bearer token/, { verifier: v });
    const forAudience = await ec.sign({ sub: "alice", tenant: "acme", aud: ["jitv", "jitv-delegation"] });
    await expectRefused(forAudience, /not accepted as a bearer token/, { verifier: v });
    const plain = await ec.sign({ sub: "alice", tenant: "acme" });
    await expectRefused(plain, /not a delegation token/, { verifier: v, verify: { use: "subject" } });
    // The delegation audience alone is accepted only as a subject token.
    const delegationOnly = await ec.sign({ sub: "alice", tenant: "acme", aud: "jitv-delegation" });
    await expectRefused(delegationOnly, /audience is not accepted/, { verifier: v });
    expect(await v.verify(delegationOnly, { use: "subject" })).toMatchObject({ delegated: true });
  });

  it("refuses a malformed act claim", async () => {
    for (const act of [{ iss: "https://agents" }, { sub: 7 }, "bot"]) {
      const token = await ec.sign({ sub: "alice", tenant: "acme", act });
      await expectRefused(token, /act/, { verifier: userProfile(), verify: { use: "subject" } });
    }
  });

  it("refuses a tenant outside the profile's tenants with 403", async () => {
    const v = userProfile({ tenants: ["acme"] });
    expect(await v.verify(await ec.sign({ sub: "alice", tenant: "acme" }))).toMatchObject({ tenant: "acme" });
    for (const claims of [{ tenant: "globex" }, {}]) {
      const error = await v.verify(await ec.sign({ sub: "eve", ...claims })).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "forbidden", status: 403 });
    }
  });

  it("checks typ and azp when the profile asks for them", async () => {
    const v = verifierFor(ec, { typ: ["at+jwt"], azp: ["ci-client"] });
    const good = await ec.sign({ azp: "ci-client" }, { header: { typ: "application/at+JWT" } });
    expect(await v.verify(good)).toMatchObject({ kind: "agent" });
    expect(
      await v.verify(await ec.sign({ client_id: "ci-client" }, { header: { typ: "at+jwt" } })),
    ).toBeTruthy();
    await expectRefused(await ec.sign({ azp: "ci-client" }, { header: { typ: "JWT" } }), /typ/, {
      verifier: v,
    });
    await expectRefused(await ec.sign({ azp: "ci-client" }), /typ/, { verifier: v });
    await expectRefused(await ec.sign({ azp: "other" }, { header: { typ: "at+jwt" } }), /azp/, {
      verifier: v,
    });
    await expectRefused(await ec.sign({}, { header: { typ: "at+jwt" } }), /azp/, { verifier: v });
  });
});
