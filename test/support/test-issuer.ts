/**
 * A real OIDC-style token issuer for tests: a key pair made with jose and its JWKS served
 * by a real `node:http` server on 127.0.0.1. `sign` can also produce the malformed and
 * hostile tokens the verifier must refuse (alg none, embedded keys, crit, …).
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  base64url,
  CompactSign,
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  type KeyObject,
} from "jose";
import type { ClaimMapping, IssuerProfile } from "../../lib/identity/issuers.js";

export type TestIssuerAlg = "RS256" | "ES256";

export interface SignOptions {
  /** Extra or replacing protected-header parameters (`alg` and `kid` default to the issuer's). */
  readonly header?: Record<string, unknown>;
  /** Signature algorithm; `"none"` produces an unsigned token. @default the issuer's */
  readonly alg?: string;
  /** Signing key. @default the issuer's private key */
  readonly key?: CryptoKey | KeyObject | Uint8Array;
  /** Sign exactly `claims`, without the default iss/aud/sub/iat/exp/jti. */
  readonly noDefaults?: boolean;
}

/** Profile fields to override; `claims` is merged over `{ agent: "sub", user: "sub" }`. */
export type ProfileOverrides = Partial<Omit<IssuerProfile, "claims">> & {
  readonly claims?: Partial<ClaimMapping>;
};

export interface TestIssuer {
  /** `http://127.0.0.1:<port>` — the `iss` of signed tokens. */
  readonly issuer: string;
  readonly jwksUri: string;
  readonly alg: TestIssuerAlg;
  /** Current signing key (changes on {@link TestIssuer.rotate}). */
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  readonly kid: string;
  /** How many times the JWKS was requested. */
  jwksRequests(): number;
  /**
   * Signs a JWT. Defaults (iss, aud "jitv", sub "test-agent", iat now, exp now+300, random jti)
   * apply unless overridden; set a claim to `undefined` to leave it out.
   */
  sign(claims?: JWTPayload, options?: SignOptions): Promise<string>;
  /** A profile for this issuer: agent kind, workforce zone, audience "jitv", the issuer's alg. */
  profile(overrides?: ProfileOverrides): IssuerProfile;
  /** Replaces the key pair with a new one under a new `kid`; the JWKS then serves only the new key. */
  rotate(): Promise<void>;
  /** Stops the server; calling it again is harmless. */
  close(): Promise<void>;
}

interface KeyPair {
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
  readonly kid: string;
}

async function makeKeyPair(alg: TestIssuerAlg, kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { privateKey, publicJwk, kid };
}

const encoder = new TextEncoder();

/**
 * Starts a test issuer on a random 127.0.0.1 port. Call `close()` when done.
 *
 * @example
 * const idp = await startTestIssuer({ alg: "ES256" });
 * const token = await idp.sign({ sub: "agent-a" });
 */
export async function startTestIssuer(
  options: { alg?: TestIssuerAlg; kid?: string } = {},
): Promise<TestIssuer> {
  const alg = options.alg ?? "RS256";
  let keys = await makeKeyPair(alg, options.kid ?? `key-${randomUUID()}`);
  let requests = 0;

  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/.well-known/jwks.json") {
      requests += 1;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [keys.publicJwk] }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;
  const jwksUri = `${issuer}/.well-known/jwks.json`;

  return {
    issuer,
    jwksUri,
    alg,
    get privateKey() {
      return keys.privateKey;
    },
    get publicJwk() {
      return keys.publicJwk;
    },
    get kid() {
      return keys.kid;
    },
    jwksRequests: () => requests,
    async sign(claims = {}, signOptions = {}) {
      const now = Math.floor(Date.now() / 1000);
      const defaults: JWTPayload = signOptions.noDefaults
        ? {}
        : { iss: issuer, aud: "jitv", sub: "test-agent", iat: now, exp: now + 300, jti: randomUUID() };
      const payload = encoder.encode(JSON.stringify({ ...defaults, ...claims }));
      const header: Record<string, unknown> = {
        alg: signOptions.alg ?? alg,
        kid: keys.kid,
        ...signOptions.header,
      };
      if (header.alg === "none") {
        return `${base64url.encode(JSON.stringify(header))}.${base64url.encode(payload)}.`;
      }
      // jose refuses to sign critical extensions it was not told about; acknowledge them all.
      const crit = Array.isArray(header.crit)
        ? Object.fromEntries(header.crit.map((name: unknown) => [String(name), true]))
        : undefined;
      return new CompactSign(payload)
        .setProtectedHeader(header as { alg: string } & Record<string, unknown>)
        .sign(signOptions.key ?? keys.privateKey, crit === undefined ? undefined : { crit });
    },
    profile({ claims, ...overrides } = {}) {
      return {
        name: "test",
        issuer,
        jwksUri,
        audiences: ["jitv"],
        algorithms: [alg],
        kind: "agent",
        zone: "workforce",
        maxTokenAgeSeconds: 3600,
        clockToleranceSeconds: 30,
        ...overrides,
        claims: { agent: "sub", user: "sub", ...claims },
      };
    },
    async rotate() {
      keys = await makeKeyPair(alg, `key-${randomUUID()}`);
    },
    close() {
      if (!server.listening) return Promise.resolve();
      server.closeAllConnections();
      return new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      );
    },
  };
}
