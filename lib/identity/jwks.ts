/**
 * Signing keys of one issuer profile, fetched from its configured `jwksUri` only — never
 * from a URL or key carried by a token. Keys are cached; an unknown `kid` triggers at most
 * one refetch per cooldown, so a stream of forged tokens cannot turn jitv into a JWKS
 * flooder. With nothing cached, a failed fetch is remembered for a failure cooldown: requests
 * meanwhile fail fast instead of each one fetching from an issuer that is down.
 */
import {
  type CryptoKey,
  createLocalJWKSet,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWK,
  type JWSHeaderParameters,
  type JWTVerifyGetKey,
  type LocalJWKSet,
} from "jose";
import { InvalidTokenError, UpstreamUnavailableError } from "../domain/errors.js";
import type { IssuerProfile } from "./issuers.js";

/** A key resolver for jose `jwtVerify`. */
export type KeyResolver = JWTVerifyGetKey;

export interface RemoteJwksOptions {
  /** Whole request, headers and body. @default 3000 */
  readonly timeoutMs?: number;
  /** Largest accepted JWKS body, counted while streaming. @default 65536 */
  readonly maxBytes?: number;
  /** Minimum time between a fetch and a refetch caused by an unknown `kid` or stale keys. @default 30000 */
  readonly cooldownMs?: number;
  /**
   * While no keys are cached, how long after a failed fetch lookups fail fast with
   * `UpstreamUnavailableError` instead of fetching again. @default cooldownMs
   */
  readonly failureCooldownMs?: number;
  /** Cached keys older than this are refreshed on next use (kept if the refresh fails). @default 600000 */
  readonly maxAgeMs?: number;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** @default globalThis.fetch */
  readonly fetch?: typeof globalThis.fetch;
}

const DEFAULT_TIMEOUT_MS = 3000;
const DEFAULT_MAX_BYTES = 64 * 1024;
const DEFAULT_COOLDOWN_MS = 30_000;
const DEFAULT_MAX_AGE_MS = 10 * 60_000;

interface CachedKeys {
  readonly resolve: LocalJWKSet;
  readonly fetchedAt: number;
}

/**
 * The JWKS of one issuer profile.
 *
 * @example
 * const jwks = new RemoteJwks(profile);
 * await jwtVerify(token, jwks.getKey, { algorithms: [...profile.algorithms] });
 */
export class RemoteJwks {
  readonly #profileName: string;
  readonly #uri: string;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #cooldownMs: number;
  readonly #failureCooldownMs: number;
  readonly #maxAgeMs: number;
  readonly #now: () => Date;
  readonly #fetch: typeof globalThis.fetch;
  #cached: CachedKeys | undefined;
  #lastAttemptAt: number | undefined;
  /** The last failed fetch, cleared by a successful one. */
  #lastFailure: { readonly at: number; readonly cause: unknown } | undefined;
  #inFlight: Promise<void> | undefined;

  constructor(profile: Pick<IssuerProfile, "name" | "jwksUri">, options: RemoteJwksOptions = {}) {
    this.#profileName = profile.name;
    this.#uri = profile.jwksUri;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#cooldownMs = options.cooldownMs ?? DEFAULT_COOLDOWN_MS;
    this.#failureCooldownMs = options.failureCooldownMs ?? this.#cooldownMs;
    this.#maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    this.#now = options.now ?? (() => new Date());
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /**
   * Key resolver for jose `jwtVerify` (bound; pass it as is).
   *
   * @throws UpstreamUnavailableError when no keys were ever fetched and fetching fails, or
   *   failed less than `failureCooldownMs` ago (then without fetching).
   * @throws InvalidTokenError `token signed with an unknown key` when no published key matches
   *   the token's `kid`/`alg`, even after the one refetch the cooldown allows.
   * @throws jose `JWKSMultipleMatchingKeys` (iterable over the candidates) when the token has
   *   no `kid` and several keys fit.
   */
  readonly getKey = async (header?: JWSHeaderParameters, token?: FlattenedJWSInput): Promise<CryptoKey> => {
    let fetchedNow = false;
    if (this.#cached === undefined) {
      await this.#fetchFirstKeys();
      fetchedNow = true;
    } else if (this.#ms() - this.#cached.fetchedAt >= this.#maxAgeMs && this.#mayRefetch()) {
      // Stale keys still verify if the issuer is down: its outage is not the caller's fault.
      fetchedNow = await this.#refresh().then(
        () => true,
        () => false,
      );
    }
    try {
      return await this.#current().resolve(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      if (fetchedNow || !this.#mayRefetch()) throw unknownKey();
      try {
        await this.#refresh();
      } catch {
        throw unknownKey();
      }
      try {
        return await this.#current().resolve(header, token);
      } catch (retryError) {
        if (retryError instanceof errors.JWKSNoMatchingKey) throw unknownKey();
        throw retryError;
      }
    }
  };

  #ms(): number {
    return this.#now().getTime();
  }

  #mayRefetch(): boolean {
    return this.#lastAttemptAt === undefined || this.#ms() - this.#lastAttemptAt >= this.#cooldownMs;
  }

  /**
   * Fetches keys when none are cached. A caller arriving while a fetch is in flight shares it;
   * one arriving within `failureCooldownMs` of a failed fetch fails fast, so an issuer outage
   * costs one fetch per window rather than one per request.
   */
  async #fetchFirstKeys(): Promise<void> {
    const failure = this.#lastFailure;
    if (
      this.#inFlight === undefined &&
      failure !== undefined &&
      this.#ms() - failure.at < this.#failureCooldownMs
    ) {
      throw this.#unavailable(failure.cause);
    }
    await this.#refresh();
  }

  #unavailable(cause: unknown): UpstreamUnavailableError {
    return new UpstreamUnavailableError(
      `signing keys of issuer profile "${this.#profileName}" could not be fetched`,
      { cause },
    );
  }

  #current(): CachedKeys {
    if (this.#cached === undefined) throw new Error("RemoteJwks: no keys cached");
    return this.#cached;
  }

  /** One fetch at a time: concurrent callers share it. */
  async #refresh(): Promise<void> {
    this.#inFlight ??= this.#load().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #load(): Promise<void> {
    this.#lastAttemptAt = this.#ms();
    let jwks: JSONWebKeySet;
    try {
      jwks = await this.#download();
    } catch (cause) {
      this.#lastFailure = { at: this.#ms(), cause };
      throw this.#unavailable(cause);
    }
    this.#lastFailure = undefined;
    this.#cached = { resolve: createLocalJWKSet(jwks), fetchedAt: this.#ms() };
  }

  async #download(): Promise<JSONWebKeySet> {
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error(`JWKS request timed out after ${this.#timeoutMs} ms`)),
      this.#timeoutMs,
    );
    try {
      const response = await this.#fetch(this.#uri, {
        signal: controller.signal,
        // Follow no redirects: keys come from the configured URL and nowhere else.
        redirect: "error",
        headers: { accept: "application/json" },
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new Error(`JWKS endpoint answered HTTP ${response.status}`);
      }
      const text = await this.#readCapped(response, controller);
      return parseJwks(text);
    } catch (error) {
      // An aborted fetch rejects with the abort reason on Node, but be explicit.
      if (controller.signal.aborted && controller.signal.reason instanceof Error) {
        throw controller.signal.reason;
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  async #readCapped(response: Response, controller: AbortController): Promise<string> {
    const tooLarge = () => new Error(`JWKS response exceeds ${this.#maxBytes} bytes`);
    const declared = Number(response.headers.get("content-length") ?? Number.NaN);
    if (declared > this.#maxBytes) {
      controller.abort(tooLarge());
      throw tooLarge();
    }
    if (response.body === null) return "";
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > this.#maxBytes) {
        controller.abort(tooLarge());
        await reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  }
}

function unknownKey(): InvalidTokenError {
  return new InvalidTokenError("token signed with an unknown key");
}

/** Keeps only public asymmetric keys: a JWKS that leaks a private or shared key must not widen trust. */
function parseJwks(text: string): JSONWebKeySet {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error("JWKS response is not JSON");
  }
  if (typeof json !== "object" || json === null || !Array.isArray((json as { keys?: unknown }).keys)) {
    throw new Error('JWKS response has no "keys" array');
  }
  const keys = ((json as { keys: unknown[] }).keys as unknown[]).filter(
    (key): key is JWK =>
      typeof key === "object" &&
      key !== null &&
      typeof (key as JWK).kty === "string" &&
      (key as JWK).kty !== "oct" &&
      !("d" in key),
  );
  return { keys };
}
