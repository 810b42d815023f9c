import type { LocalIssuer } from "./local-issuer.js";

/** Group a local user needs (in the `groups` claim) to call jitv's admin routes. */
export const LOCAL_ADMIN_GROUP = "jitv-admins";
/** Group a local user needs (in the `groups` claim) to approve tasks. */
export const LOCAL_APPROVER_GROUP = "jitv-approvers";

/**
 * The issuers file (CONTRACT.md section 2) that trusts the running local issuer:
 *
 * - `local-agents` — `/agents`, kind `agent`, zone `workforce`;
 * - `local-customer-agents` — `/customer-agents`, kind `agent`, zone `customer`;
 * - `local-users` — `/users`, kind `user`, zone `customer`, `tenant` and `groups` claims, and
 *   `tenants`: the demo users' tenants, the only ones it may assert;
 * - `local-staff` — `/staff`, kind `user`, zone `workforce`, `groups` claim;
 *
 * plus `admins` / `approvers` rules granting those roles to local users whose `groups`
 * claim holds `jitv-admins` / `jitv-approvers`. Every profile allows only ES256, the
 * issuer's audience, tokens up to 3600 s old and 30 s of clock skew.
 *
 * @returns plain JSON, to be validated like any issuers file (e.g. with
 *   `parseIssuerConfig`) and merged with the profiles of `--issuers FILE`.
 * @example
 * ```ts
 * const local = await startLocalIssuer({ workforceAgents, customerAgents, users });
 * const config = parseIssuerConfig(localIssuerProfiles(local, users.map((u) => u.tenant)));
 * ```
 */
export function localIssuerProfiles(issuer: LocalIssuer, tenants: readonly string[]): unknown {
  const { workforceAgents, customerAgents, users, staff } = issuer.issuers;
  const common = {
    audiences: [issuer.audience],
    algorithms: ["ES256"],
    maxTokenAgeSeconds: 3600,
    clockToleranceSeconds: 30,
  };
  return {
    issuers: [
      {
        name: "local-agents",
        issuer: workforceAgents.issuer,
        jwksUri: workforceAgents.jwksUri,
        kind: "agent",
        zone: "workforce",
        claims: { agent: "sub" },
        ...common,
      },
      {
        name: "local-customer-agents",
        issuer: customerAgents.issuer,
        jwksUri: customerAgents.jwksUri,
        kind: "agent",
        zone: "customer",
        claims: { agent: "sub" },
        ...common,
      },
      {
        name: "local-users",
        issuer: users.issuer,
        jwksUri: users.jwksUri,
        kind: "user",
        zone: "customer",
        claims: { user: "sub", tenant: "tenant", groups: "groups" },
        // The demo tenants: a token of this issuer naming any other tenant is refused.
        tenants: [...new Set(tenants)],
        ...common,
      },
      {
        name: "local-staff",
        issuer: staff.issuer,
        jwksUri: staff.jwksUri,
        kind: "user",
        zone: "workforce",
        claims: { user: "sub", groups: "groups" },
        ...common,
      },
    ],
    // Each zone's own admins and approvers: a customer-zone admin has no power over workforce tasks.
    admins: [staff, users].map((i) => ({ issuer: i.issuer, claim: "groups", values: [LOCAL_ADMIN_GROUP] })),
    approvers: [staff, users].map((i) => ({
      issuer: i.issuer,
      claim: "groups",
      values: [LOCAL_APPROVER_GROUP],
    })),
  };
}
