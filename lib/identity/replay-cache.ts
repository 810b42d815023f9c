/**
 * Port: remembers used token ids so a token with a `jti` vends at most once.
 * `consume` throws `InvalidTokenError` ("token already used") when the jti was seen.
 */
export interface ReplayCache {
  /** @param expiresAt the token's `exp` in epoch seconds; the entry is kept until then. */
  consume(issuer: string, jti: string, expiresAt: number): Promise<void>;
}
