import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../../lib/domain/errors.js";
import {
  type IssuerConfig,
  loadIssuerConfigFile,
  mergeIssuerConfigs,
  parseIssuerConfig,
} from "../../../lib/identity/issuers.js";

const profile = (overrides: Record<string, unknown> = {}) => ({
  name: "ci",
  issuer: "https://token.actions.githubusercontent.com",
  jwksUri: "https://token.actions.githubusercontent.com/.well-known/jwks",
  audiences: ["jitv"],
  algorithms: ["RS256"],
  kind: "agent",
  zone: "workforce",
  ...overrides,
});

function configError(json: unknown): string {
  try {
    parseIssuerConfig(json);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error("expected parseIssuerConfig to throw");
}

describe("parseIssuerConfig", () => {
  it("takes tenants only on customer-zone user profiles, and a delegation audience unlike the others", () => {
    const user = { kind: "user", zone: "customer" };
    expect(
      parseIssuerConfig({
        issuers: [profile({ ...user, tenants: ["acme"], delegation: { audience: "jitv-delegation" } })],
      }).issuers[0],
    ).toMatchObject({ tenants: ["acme"], delegation: { audience: "jitv-delegation" } });
    expect(configError({ issuers: [profile({ tenants: ["acme"] })] })).toContain(
      "issuers[0].tenants: only a customer-zone user profile may list tenants",
    );
    expect(configError({ issuers: [profile({ ...user, tenants: [] })] })).toContain("issuers[0].tenants");
    expect(configError({ issuers: [profile({ delegation: { audience: "x" } })] })).toContain(
      "issuers[0].delegation: only a user profile may declare delegation",
    );
    expect(configError({ issuers: [profile({ ...user, delegation: { audience: "jitv" } })] })).toContain(
      "issuers[0].delegation.audience: must differ from every entry of audiences",
    );
  });

  it("fills defaults for claims, token age and clock tolerance", () => {
    const config = parseIssuerConfig({ issuers: [profile()] });
    expect(config.issuers[0]).toEqual({
      ...profile(),
      claims: { agent: "sub", user: "sub" },
      maxTokenAgeSeconds: 3600,
      clockToleranceSeconds: 30,
    });
    expect(config.admins).toBeUndefined();
  });

  it("keeps mapped claims, explicit limits and the admins/approvers blocks", () => {
    const config = parseIssuerConfig({
      issuers: [
        profile({
          claims: { agent: "agent_id", tenant: "org", groups: "roles" },
          maxTokenAgeSeconds: 600,
          clockToleranceSeconds: 0,
          algorithms: ["ES256", "EdDSA", "PS512"],
        }),
      ],
      admins: { issuer: "https://idp.example.com", claim: "groups", values: ["jitv-admins"] },
      approvers: { issuer: "https://idp.example.com", claim: "groups", values: ["jitv-approvers"] },
    });
    expect(config.issuers[0]?.claims).toEqual({
      agent: "agent_id",
      user: "sub",
      tenant: "org",
      groups: "roles",
    });
    expect(config.issuers[0]?.maxTokenAgeSeconds).toBe(600);
    expect(config.issuers[0]?.clockToleranceSeconds).toBe(0);
    // One rule, as in the contract, is normalised to a list of rules.
    expect(config.admins).toEqual([
      { issuer: "https://idp.example.com", claim: "groups", values: ["jitv-admins"] },
    ]);
    expect(config.approvers?.map((r) => r.values)).toEqual([["jitv-approvers"]]);
  });

  it("refuses HS256 and says it is symmetric, naming the field", () => {
    expect(configError({ issuers: [profile({ algorithms: ["RS256", "HS256"] })] })).toMatch(
      /issuers\[0\]\.algorithms\[1\]: HS256 is symmetric and refused/,
    );
  });

  it.each(["HS384", "HS512"])("refuses %s", (alg) => {
    expect(configError({ issuers: [profile({ algorithms: [alg] })] })).toContain(
      `issuers[0].algorithms[0]: ${alg} is symmetric and refused`,
    );
  });

  it("refuses alg none as unsigned", () => {
    expect(configError({ issuers: [profile({ algorithms: ["none"] })] })).toMatch(
      /issuers\[0\]\.algorithms\[0\]: none means unsigned tokens and is refused/,
    );
  });

  it("refuses an unknown algorithm and lists the allowed ones", () => {
    expect(configError({ issuers: [profile({ algorithms: ["RS1"] })] })).toMatch(
      /issuers\[0\]\.algorithms\[0\]: unsupported algorithm "RS1"; allowed: RS256, .*EdDSA/,
    );
  });

  it("refuses empty audiences and algorithms", () => {
    const message = configError({ issuers: [profile({ audiences: [], algorithms: [] })] });
    expect(message).toContain("issuers[0].audiences: must list at least one audience");
    expect(message).toContain("issuers[0].algorithms: must list at least one algorithm");
  });

  it("refuses unknown fields at every level", () => {
    const message = configError({
      issuers: [profile({ audience: "jitv", claims: { agent: "sub", role: "x" } })],
      admins: { issuer: "https://idp", claim: "groups", values: ["a"], extra: true },
      version: 2,
    });
    expect(message).toContain("issuers[0].audience: unknown field");
    expect(message).toContain("issuers[0].claims.role: unknown field");
    expect(message).toContain("admins.extra: unknown field");
    expect(message).toContain("version: unknown field");
  });

  it("refuses a duplicate profile name", () => {
    const message = configError({
      issuers: [profile(), profile({ issuer: "https://other.example" })],
    });
    expect(message).toContain('issuers[1].name: duplicate name "ci" (also issuers[0].name)');
  });

  it("refuses a duplicate issuer string", () => {
    const message = configError({ issuers: [profile(), profile({ name: "ci-2" })] });
    expect(message).toContain("issuers[1].issuer: duplicate issuer");
    expect(message).not.toContain("issuers[1].name");
  });

  it("refuses a plain-http jwksUri on a non-loopback host", () => {
    expect(configError({ issuers: [profile({ jwksUri: "http://idp.example.com/jwks" })] })).toContain(
      "issuers[0].jwksUri: must use https",
    );
  });

  it.each(["http://127.0.0.1:8080/jwks", "http://localhost:8080/jwks", "http://[::1]:8080/jwks"])(
    "allows plain http on loopback: %s",
    (jwksUri) => {
      expect(parseIssuerConfig({ issuers: [profile({ jwksUri })] }).issuers[0]?.jwksUri).toBe(jwksUri);
    },
  );

  it("refuses a jwksUri that is not a URL or carries credentials", () => {
    expect(configError({ issuers: [profile({ jwksUri: "jwks.json" })] })).toContain(
      "issuers[0].jwksUri: must be an absolute URL",
    );
    expect(configError({ issuers: [profile({ jwksUri: "https://u:p@idp.example.com/jwks" })] })).toContain(
      "issuers[0].jwksUri: must not contain credentials",
    );
  });

  it("refuses a bad kind or zone", () => {
    const message = configError({ issuers: [profile({ kind: "robot", zone: "partner" })] });
    expect(message).toContain('issuers[0].kind: must be one of "agent", "user"');
    expect(message).toContain('issuers[0].zone: must be one of "workforce", "customer"');
  });

  it("refuses clock tolerance above 300 s and non-positive token ages", () => {
    const message = configError({
      issuers: [profile({ clockToleranceSeconds: 301, maxTokenAgeSeconds: 0 })],
    });
    expect(message).toContain("issuers[0].clockToleranceSeconds: must be at most 300");
    expect(message).toContain("issuers[0].maxTokenAgeSeconds:");
  });

  it("names a missing required field", () => {
    const { jwksUri: _omitted, ...withoutJwks } = profile();
    expect(configError({ issuers: [withoutJwks] })).toContain("issuers[0].jwksUri: is required");
  });

  it("refuses an empty issuers list and a non-object file", () => {
    expect(configError({ issuers: [] })).toContain("issuers: must list at least one issuer profile");
    expect(configError([])).toContain("(top level): must be an object");
  });

  it("refuses an admins block with no values", () => {
    expect(
      configError({ issuers: [profile()], admins: { issuer: "https://idp", claim: "groups", values: [] } }),
    ).toContain("admins.values: must list at least one value");
  });
});

describe("loadIssuerConfigFile", () => {
  const dir = mkdtempSync(join(tmpdir(), "jitv-issuers-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads and validates a file", () => {
    const path = join(dir, "ok.json");
    writeFileSync(path, JSON.stringify({ issuers: [profile()] }));
    expect(loadIssuerConfigFile(path).issuers[0]?.name).toBe("ci");
  });

  it("names the file and the field when the content is invalid", () => {
    const path = join(dir, "bad.json");
    writeFileSync(path, JSON.stringify({ issuers: [profile({ algorithms: ["HS256"] })] }));
    expect(() => loadIssuerConfigFile(path)).toThrow(ConfigError);
    expect(() => loadIssuerConfigFile(path)).toThrow(
      `${path}: invalid issuers file: issuers[0].algorithms[0]`,
    );
  });

  it("reports a missing file and invalid JSON as ConfigError", () => {
    expect(() => loadIssuerConfigFile(join(dir, "missing.json"))).toThrow(/cannot read issuers file/);
    const path = join(dir, "broken.json");
    writeFileSync(path, "{ issuers: ");
    expect(() => loadIssuerConfigFile(path)).toThrow(/is not valid JSON/);
  });
});

describe("mergeIssuerConfigs", () => {
  const builtIn: IssuerConfig = parseIssuerConfig({
    issuers: [
      profile({ name: "local", issuer: "http://127.0.0.1:9000", jwksUri: "http://127.0.0.1:9000/jwks" }),
    ],
    admins: { issuer: "http://127.0.0.1:9000", claim: "groups", values: ["local-admins"] },
  });

  it("adds the profiles of the second configuration", () => {
    const merged = mergeIssuerConfigs(builtIn, parseIssuerConfig({ issuers: [profile()] }));
    expect(merged.issuers.map((p) => p.name)).toEqual(["local", "ci"]);
    expect(merged.admins).toEqual(builtIn.admins);
  });

  it("keeps the admins and approvers rules of both configurations (each names its own issuer)", () => {
    const file = parseIssuerConfig({
      issuers: [profile()],
      admins: [{ issuer: profile().issuer, claim: "groups", values: ["ops"] }],
    });
    expect(mergeIssuerConfigs(builtIn, file).admins?.map((r) => r.values)).toEqual([
      ...(builtIn.admins ?? []).map((r) => r.values),
      ["ops"],
    ]);
  });

  it("accepts a list of admins rules, one per zone's user issuer, and refuses an empty one", () => {
    const config = parseIssuerConfig({
      issuers: [profile()],
      admins: [
        { issuer: "https://staff.example.com", claim: "groups", values: ["jitv-admins"] },
        { issuer: "https://customers.example.com", claim: "roles", values: ["tenant-admin"] },
      ],
    });
    expect(config.admins).toHaveLength(2);
    expect(configError({ issuers: [profile()], admins: [] })).toMatch(/admins/);
  });

  it("refuses a profile name or issuer defined in both", () => {
    const sameName = parseIssuerConfig({ issuers: [profile({ name: "local" })] });
    expect(() => mergeIssuerConfigs(builtIn, sameName)).toThrow(
      /cannot merge issuer configurations: issuer profile name "local" is defined in both/,
    );
    const sameIssuer = parseIssuerConfig({
      issuers: [profile({ issuer: "http://127.0.0.1:9000" })],
    });
    expect(() => mergeIssuerConfigs(builtIn, sameIssuer)).toThrow(ConfigError);
    expect(() => mergeIssuerConfigs(builtIn, sameIssuer)).toThrow(
      /issuer profile issuer "http:\/\/127\.0\.0\.1:9000"/,
    );
  });
});
