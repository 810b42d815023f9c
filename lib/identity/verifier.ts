/**
 * Verifies OIDC workload and user tokens against the trusted issuer profiles
 * (CONTRACT.md section 2). Each rule is checked explicitly with its own stable message
 * before jose verifies the signature and re-checks the claims. Messages name at most the
 * issuer profile: never the token, nor claim values an attacker controls.
 */
import {
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  type JWTVerifyOptions,
  type JWTVerifyResult,
  jwtVerify,
  type ProtectedHeaderParameters,
} from "jose";
import { ConfigError, ForbiddenError, InvalidTokenError, JitvError } from "../domain/errors.js";
import type { Actor, IssuerKind, VerifiedIdentity } from "../domain/identity.js";
import type { IssuerConfig, IssuerProfile } from "./issuers.js";
import { type KeyResolver, RemoteJwks } from "./jwks.js";

/** Tokens larger than this are refused before any parsing. */
export const MAX_TOKEN_BYTES = 8 * 1024;

/** Header parameters that would let a token choose its own verification key. */
const KEY_CARRYING_HEADERS = ["jwk", "jku", "x5u", "x5c"] as const;

export interface TokenVerifierOptions {
  readonly config: IssuerConfig;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /**
   * Key resolver per profile; called at most once per profile and memoised.
   * @default a {@link RemoteJwks} on the profile's `jwksUri`, sharing `now`
   */
  readonly jwks?: (profile: IssuerProfile) => KeyResolver;
}

export interface VerifyTokenOptions {
  /** When given, the token's issuer profile must be of this kind. */
  readonly kind?: IssuerKind;
  /**
   * `bearer` (default): the caller's own token on a route; a delegation token (one with `act`,
   * or for the profile's delegation audience) is refused. `subject`: the `subjectToken` of a
   * delegated vend; it must be a delegation token, and the profile's delegation audience is
   * accepted beside its audiences.
   */
  readonly use?: "bearer" | "subject";
}

/**
 * Verifies bearer tokens against the configured issuer profiles.
 *
 * @example
 * const verifier = new TokenVerifier({ config: loadIssuerConfigFile("issuers.json") });
 * const agent = await verifier.verify(bearer, { kind: "agent" });
 */
export class TokenVerifier {
  readonly #profiles: ReadonlyMap<string, IssuerProfile>;
  readonly #now: () => Date;
  readonly #jwksFactory: (profile: IssuerProfile) => KeyResolver;
  readonly #resolvers = new Map<string, KeyResolver>();

  constructor(options: TokenVerifierOptions) {
    const profiles = new Map<string, IssuerProfile>();
    for (const profile of options.config.issuers) {
      if (profiles.has(profile.issuer)) {
        throw new ConfigError(`duplicate issuer ${JSON.stringify(profile.issuer)} in issuer configuration`);
      }
      profiles.set(profile.issuer, profile);
    }
    this.#profiles = profiles;
    this.#now = options.now ?? (() => new Date());
    const now = this.#now;
    this.#jwksFactory = options.jwks ?? ((profile) => new RemoteJwks(profile, { now }).getKey);
  }

  /**
   * Verifies `token` and returns who it identifies.
   *
   * @throws InvalidTokenError (`invalid_token`) for any token that breaks a rule.
   * @throws UpstreamUnavailableError when the issuer's keys cannot be fetched and none are cached.
   */
  async verify(token: string, options: VerifyTokenOptions = {}): Promise<VerifiedIdentity> {
    if (typeof token !== "string" || token.length === 0) throw invalid("token is missing");
    if (Buffer.byteLength(token, "utf8") > MAX_TOKEN_BYTES) {
      throw invalid(`token is larger than ${MAX_TOKEN_BYTES / 1024} KiB`);
    }
    const parts = token.split(".");
    if (parts.length === 5) throw invalid("encrypted tokens (JWE) are not accepted");
    if (parts.length !== 3) throw invalid("token is not a compact JWS (three dot-separated parts)");

    const header = decodeHeader(token);
    checkHeader(header);
    const claims = decodePayload(token);

    if (typeof claims.iss !== "string") throw invalid("token has no iss claim");
    const profile = this.#profiles.get(claims.iss);
    if (profile === undefined) throw invalid("token issuer is not trusted");
    const where = `issuer profile "${profile.name}"`;

    if (!(profile.algorithms as readonly string[]).includes(header.alg as string)) {
      throw invalid(`token algorithm is not allowed for ${where}`);
    }
    checkType(header, profile, where);
    const use = options.use ?? "bearer";
    const audiences =
      use === "subject" && profile.delegation !== undefined
        ? [...profile.audiences, profile.delegation.audience]
        : profile.audiences;
    const nowSeconds = Math.floor(this.#now().getTime() / 1000);
    checkClaims(claims, profile, audiences, nowSeconds, where);

    const verified = await this.#verifySignature(token, profile, audiences, where);
    const payload = verified.payload;

    if (options.kind !== undefined && options.kind !== profile.kind) {
      throw invalid(`${where} issues ${profile.kind} tokens; a ${options.kind} token is required`);
    }
    const identity = toIdentity(payload, profile, where);
    if (use === "bearer" && identity.delegated) {
      throw invalid(
        "a delegation token (act claim or delegation audience) is not accepted as a bearer token",
      );
    }
    if (use === "subject" && !identity.delegated) {
      throw invalid(
        `the subject token is not a delegation token: it needs an act claim naming the agent${
          profile.delegation === undefined ? "" : " or the delegation audience"
        }`,
      );
    }
    // After the signature: the tenant list is policy about verified claims.
    if (profile.tenants !== undefined && !profile.tenants.includes(identity.tenant ?? "")) {
      throw new ForbiddenError(`${where} may not assert this tenant`);
    }
    return identity;
  }

  async #verifySignature(
    token: string,
    profile: IssuerProfile,
    audiences: readonly string[],
    where: string,
  ): Promise<JWTVerifyResult> {
    const verifyOptions: JWTVerifyOptions = {
      algorithms: [...profile.algorithms],
      issuer: profile.issuer,
      audience: [...audiences],
      requiredClaims: ["exp", "iat", "sub"],
      clockTolerance: profile.clockToleranceSeconds,
      maxTokenAge: profile.maxTokenAgeSeconds,
      currentDate: this.#now(),
    };
    try {
      return await jwtVerify(token, this.#resolver(profile), verifyOptions);
    } catch (error) {
      if (error instanceof errors.JWKSMultipleMatchingKeys) {
        // No `kid` and several keys fit: try each published key.
        for await (const key of error) {
          try {
            return await jwtVerify(token, key, verifyOptions);
          } catch (keyError) {
            if (!(keyError instanceof errors.JWSSignatureVerificationFailed))
              throw toTokenError(keyError, where);
          }
        }
        throw invalid(`token signature is invalid for ${where}`);
      }
      throw toTokenError(error, where);
    }
  }

  #resolver(profile: IssuerProfile): KeyResolver {
    let resolver = this.#resolvers.get(profile.name);
    if (resolver === undefined) {
      resolver = this.#jwksFactory(profile);
      this.#resolvers.set(profile.name, resolver);
    }
    return resolver;
  }
}

/** No `cause`: jose's claim errors carry the whole payload, which must never reach a log. */
function invalid(message: string): InvalidTokenError {
  return new InvalidTokenError(message);
}

function decodeHeader(token: string): ProtectedHeaderParameters {
  try {
    return decodeProtectedHeader(token);
  } catch {
    throw invalid("token header is malformed");
  }
}

function decodePayload(token: string): JWTPayload {
  try {
    return decodeJwt(token);
  } catch {
    throw invalid("token payload is malformed");
  }
}

function checkHeader(header: ProtectedHeaderParameters): void {
  if (typeof header.alg !== "string") throw invalid("token header has no alg");
  if (header.alg.toLowerCase() === "none") throw invalid("unsigned tokens (alg none) are refused");
  for (const name of KEY_CARRYING_HEADERS) {
    if (name in header) {
      throw invalid(`token header carries its own key (${name}); keys come only from the issuer's JWKS`);
    }
  }
  // jitv implements no JWS extensions, so every critical one is unknown to it.
  if ("crit" in header)
    throw invalid("token header declares critical extensions (crit), which are not supported");
}

function isNumericDate(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** The profile's optional `typ` rule: `at+jwt` and `application/at+jwt` are the same type (RFC 7515 4.1.9). */
function checkType(header: ProtectedHeaderParameters, profile: IssuerProfile, where: string): void {
  if (profile.typ === undefined) return;
  const norm = (value: string) => value.toLowerCase().replace(/^application\//, "");
  const typ = typeof header.typ === "string" ? norm(header.typ) : undefined;
  if (typ === undefined || !profile.typ.some((allowed) => norm(allowed) === typ)) {
    throw invalid(`token type (typ) is not accepted by ${where}`);
  }
}

function tokenAudiences(claims: JWTPayload): unknown[] {
  const aud = claims.aud;
  return typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
}

function checkClaims(
  claims: JWTPayload,
  profile: IssuerProfile,
  accepted: readonly string[],
  now: number,
  where: string,
): void {
  const tolerance = profile.clockToleranceSeconds;
  if (claims.aud === undefined) throw invalid("token has no aud claim");
  if (!tokenAudiences(claims).some((value) => typeof value === "string" && accepted.includes(value))) {
    throw invalid(`token audience is not accepted by ${where}`);
  }
  if (profile.azp !== undefined) {
    const azp = claims.azp ?? claims.client_id;
    if (typeof azp !== "string" || !profile.azp.includes(azp)) {
      throw invalid(`token authorized party (azp) is not accepted by ${where}`);
    }
  }
  if (claims.exp === undefined) throw invalid("token has no exp claim");
  if (!isNumericDate(claims.exp)) throw invalid("token exp claim is not a number");
  if (claims.iat === undefined) throw invalid("token has no iat claim");
  if (!isNumericDate(claims.iat)) throw invalid("token iat claim is not a number");
  if (typeof claims.sub !== "string" || claims.sub.length === 0) throw invalid("token has no sub claim");
  if (claims.exp <= now - tolerance) throw invalid("token has expired");
  if (claims.nbf !== undefined) {
    if (!isNumericDate(claims.nbf)) throw invalid("token nbf claim is not a number");
    if (claims.nbf > now + tolerance) throw invalid("token is not valid yet (nbf is in the future)");
  }
  const age = now - claims.iat;
  if (age < -tolerance) throw invalid("token was issued in the future (iat)");
  if (age - tolerance > profile.maxTokenAgeSeconds) {
    throw invalid(`token is older than the ${profile.maxTokenAgeSeconds} s allowed by ${where}`);
  }
}

function toTokenError(error: unknown, where: string): Error {
  if (error instanceof JitvError) return error;
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return invalid(`token signature is invalid for ${where}`);
  }
  if (error instanceof errors.JWTExpired) return invalid("token has expired or is too old");
  if (error instanceof errors.JWTClaimValidationFailed) {
    return invalid(`token ${error.claim} claim is not accepted by ${where}`);
  }
  if (error instanceof errors.JOSEError) return invalid(`token could not be verified for ${where}`);
  return error instanceof Error ? error : new Error(String(error));
}

function toIdentity(payload: JWTPayload, profile: IssuerProfile, where: string): VerifiedIdentity {
  const idClaim = profile.kind === "agent" ? profile.claims.agent : profile.claims.user;
  const id = payload[idClaim];
  if (typeof id !== "string" || id.length === 0) {
    throw invalid(`token claim "${idClaim}" (${profile.kind} id for ${where}) is missing or not a string`);
  }

  let tenant: string | undefined;
  if (profile.claims.tenant !== undefined && payload[profile.claims.tenant] !== undefined) {
    const value = payload[profile.claims.tenant];
    if (typeof value !== "string") {
      throw invalid(`token claim "${profile.claims.tenant}" (tenant for ${where}) is not a string`);
    }
    tenant = value;
  }

  let groups: readonly string[] = [];
  if (profile.claims.groups !== undefined && payload[profile.claims.groups] !== undefined) {
    const value = payload[profile.claims.groups];
    if (!Array.isArray(value) || !value.every((group) => typeof group === "string")) {
      throw invalid(`token claim "${profile.claims.groups}" (groups for ${where}) is not a list of strings`);
    }
    groups = Object.freeze([...value]);
  }

  if (payload.jti !== undefined && (typeof payload.jti !== "string" || payload.jti.length === 0)) {
    throw invalid("token jti claim is not a string");
  }

  let actor: Actor | undefined;
  if (payload.act !== undefined) {
    const act = payload.act as unknown;
    if (typeof act !== "object" || act === null || Array.isArray(act)) {
      throw invalid("token act claim is not an object");
    }
    const { sub, iss } = act as { sub?: unknown; iss?: unknown };
    if (typeof sub !== "string" || sub.length === 0)
      throw invalid("token act.sub claim is missing or not a string");
    if (iss !== undefined && (typeof iss !== "string" || iss.length === 0)) {
      throw invalid("token act.iss claim is not a string");
    }
    actor = { sub, ...(iss === undefined ? {} : { iss }) };
  }
  const delegationAudience = profile.delegation?.audience;
  const delegated =
    actor !== undefined ||
    (delegationAudience !== undefined && tokenAudiences(payload).includes(delegationAudience));

  return {
    profile: profile.name,
    issuer: profile.issuer,
    kind: profile.kind,
    zone: profile.zone,
    subject: payload.sub as string,
    id,
    ...(tenant === undefined ? {} : { tenant }),
    groups,
    ...(payload.jti === undefined ? {} : { jti: payload.jti }),
    expiresAt: payload.exp as number,
    ...(actor === undefined ? {} : { actor }),
    delegated,
    claims: Object.freeze({ ...payload }),
  };
}
