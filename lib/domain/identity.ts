/** Who a verified token says the caller is. Built only by the token verifier. */
export type Zone = "workforce" | "customer";
export type IssuerKind = "agent" | "user";

/** The actor (`act`) of a delegation token: the agent it was issued to. */
export interface Actor {
  readonly sub: string;
  /** The actor's issuer, when the identity provider names it. */
  readonly iss?: string;
}

export interface VerifiedIdentity {
  /** Issuer profile name from the issuers file. */
  readonly profile: string;
  /** Exact `iss` of the token. */
  readonly issuer: string;
  readonly kind: IssuerKind;
  readonly zone: Zone;
  /** The token's `sub`. */
  readonly subject: string;
  /** Value of the profile's `claims.agent` (agents) or `claims.user` (users) claim. */
  readonly id: string;
  /** Value of the profile's `claims.tenant` claim, when present. */
  readonly tenant?: string;
  readonly groups: readonly string[];
  /** The token's `jti`, when present: single-use for vending. */
  readonly jti?: string;
  /** The token's `exp` (epoch seconds). */
  readonly expiresAt: number;
  /** The RFC 8693 `act` claim, when the token was issued for an actor (the agent) to use. */
  readonly actor?: Actor;
  /**
   * True for a delegation token: it carries `act`, or its `aud` holds the profile's delegation
   * audience. Such a token is only ever a `subjectToken`, never a bearer token.
   */
  readonly delegated?: boolean;
  /** All verified claims, for admin/approver checks on a configured claim. Never logged. */
  readonly claims: Readonly<Record<string, unknown>>;
}

/**
 * Who counts as an admin or approver (the issuers file's `admins` / `approvers`): tokens from
 * `issuer` whose `claim` holds (or, for arrays, contains) one of `values`.
 */
export interface RoleRule {
  readonly issuer: string;
  readonly claim: string;
  readonly values: readonly string[];
}
