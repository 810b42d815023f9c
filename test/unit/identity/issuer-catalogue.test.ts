import { randomUUID } from "node:crypto";
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ForbiddenError, InvalidRequestError, InvalidTokenError } from "../../../lib/domain/errors.js";
import type { VerifiedIdentity } from "../../../lib/domain/identity.js";
import { renderSessionPolicy } from "../../../lib/domain/render.js";
import { buildAssumeRoleRequest, buildSessionTags } from "../../../lib/domain/sts-request.js";
import type { Task } from "../../../lib/domain/task.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { type IssuerProfile, loadIssuerConfigFile } from "../../../lib/identity/issuers.js";
import { TokenVerifier } from "../../../lib/identity/verifier.js";
import { startTestIssuer, type TestIssuer } from "../../support/test-issuer.js";

// The issuer catalogue (examples/issuers/*.json): each profile loaded by the real loader, a token
// of that provider's exact claim shape signed by a local key and verified against a local JWKS
// (only `issuer` and `jwksUri` of the profile are pointed at it), then rendered into a session
// policy, session tags and a source identity by the same code the vend uses.

const catalogue = resolve(import.meta.dirname, "../../../examples/issuers");

interface Provider {
  readonly file: string;
  /** The provider's real issuer URL shape. */
  readonly issuer: RegExp;
  /** Where the provider publishes its keys, relative to the issuer. */
  readonly jwksPath: string;
  /** The claim the profile must map to the agent id. */
  readonly agentClaim: string;
  /** The token header the provider sends, beside `alg` and `kid`. */
  readonly header: Record<string, unknown>;
  /** The token's claims as the provider issues them (`iss` is added). */
  readonly claims: (now: number, aud: string) => JWTPayload;
  /** The agent id jitv sees. */
  readonly agent: string;
}

const GITHUB_WORKFLOW = "octo-org/octo-repo/.github/workflows/deploy.yml@refs/heads/main";
const ENTRA_TENANT = "aaaabbbb-0000-cccc-1111-dddd2222eeee";
const ENTRA_WORKLOAD_OID = "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb";
const OKTA_CLIENT = "0oa1b2c3d4e5f6g7h8i9";

/** GitHub's token for a job of `deploy.yml` on main, run for an environment (`sub` then names the environment). */
function githubClaims(
  now: number,
  aud: string,
  sub = "repo:octo-org/octo-repo:environment:prod",
): JWTPayload {
  return {
    jti: randomUUID(),
    sub,
    environment: "prod",
    aud,
    ref: "refs/heads/main",
    sha: "d6f3f2a7c1b5e4d3c2b1a0f9e8d7c6b5a4f3e2d1",
    repository: "octo-org/octo-repo",
    repository_owner: "octo-org",
    actor_id: "12",
    repository_visibility: "private",
    repository_id: "74",
    repository_owner_id: "65",
    run_id: "9876543210",
    run_number: "10",
    run_attempt: "1",
    runner_environment: "github-hosted",
    actor: "octocat",
    workflow: "deploy",
    head_ref: "",
    base_ref: "",
    event_name: "workflow_dispatch",
    ref_type: "branch",
    ref_protected: "true",
    workflow_ref: GITHUB_WORKFLOW,
    workflow_sha: "d6f3f2a7c1b5e4d3c2b1a0f9e8d7c6b5a4f3e2d1",
    job_workflow_ref: "octo-org/shared-workflows/.github/workflows/release.yml@refs/tags/v2",
    job_workflow_sha: "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
    nbf: now - 5,
    exp: now + 300,
    iat: now,
  };
}

const providers: readonly Provider[] = [
  {
    file: "github-actions.json",
    issuer: /^https:\/\/token\.actions\.githubusercontent\.com$/,
    jwksPath: "/.well-known/jwks",
    agentClaim: "workflow_ref",
    header: { typ: "JWT", x5t: "ykNaY4qM_ta4k2TgZOCEYLkcYlA" },
    claims: (now, aud) => githubClaims(now, aud),
    agent: GITHUB_WORKFLOW,
  },
  {
    file: "gitlab-ci.json",
    issuer: /^https:\/\/gitlab\.com$/,
    jwksPath: "/oauth/discovery/keys",
    agentClaim: "sub",
    header: { typ: "JWT" },
    claims: (now, aud) => ({
      namespace_id: "72",
      namespace_path: "my-group",
      project_id: "20",
      project_path: "my-group/my-project",
      user_id: "1",
      user_login: "sample-user",
      user_email: "sample-user@example.com",
      user_access_level: "maintainer",
      pipeline_id: "574",
      pipeline_source: "push",
      job_id: "302",
      ref: "main",
      ref_type: "branch",
      ref_path: "refs/heads/main",
      ref_protected: "true",
      runner_id: 1,
      runner_environment: "gitlab-hosted",
      sha: "714a629c0b401fdce83e847fc9589983fc6f46bc",
      project_visibility: "private",
      ci_config_ref_uri: "gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main",
      ci_config_sha: "714a629c0b401fdce83e847fc9589983fc6f46bc",
      jti: randomUUID(),
      iat: now,
      nbf: now - 5,
      exp: now + 3600,
      sub: "project_path:my-group/my-project:ref_type:branch:ref:main",
      aud,
    }),
    agent: "project_path:my-group/my-project:ref_type:branch:ref:main",
  },
  {
    file: "eks-service-accounts.json",
    issuer: /^https:\/\/oidc\.eks\.[a-z0-9-]+\.amazonaws\.com\/id\/[A-Z0-9]{32}$/,
    jwksPath: "/keys",
    agentClaim: "sub",
    header: {},
    claims: (now, aud) => ({
      aud: [aud],
      exp: now + 3600,
      iat: now,
      jti: randomUUID(),
      "kubernetes.io": {
        namespace: "ci",
        node: { name: "ip-10-0-1-23.eu-west-1.compute.internal", uid: randomUUID() },
        pod: { name: "deployer-7d9f8b6c5-x2k4q", uid: randomUUID() },
        serviceaccount: { name: "deployer", uid: randomUUID() },
      },
      nbf: now,
      sub: "system:serviceaccount:ci:deployer",
    }),
    agent: "system:serviceaccount:ci:deployer",
  },
  {
    file: "spire.json",
    issuer: /^https:\/\/[a-z0-9.-]+$/,
    jwksPath: "/keys",
    agentClaim: "sub",
    header: { typ: "JWT" },
    claims: (now, aud) => ({
      aud: [aud],
      exp: now + 300,
      iat: now,
      sub: "spiffe://example.org/ns/prod/sa/deployer",
    }),
    agent: "spiffe://example.org/ns/prod/sa/deployer",
  },
  {
    file: "entra-workload-identity.json",
    issuer: /^https:\/\/login\.microsoftonline\.com\/[0-9a-f-]{36}\/v2\.0$/,
    // The keys live beside the tenant, not under its /v2.0 issuer path.
    jwksPath: "/../discovery/v2.0/keys",
    agentClaim: "oid",
    header: { typ: "JWT", x5t: "L1KfKFI_jnXbwWc22xZxw1sUHH0" },
    // An app-only (client credentials) v2.0 access token, as a workload identity federation exchange returns.
    claims: (now, aud) => ({
      aud,
      iat: now,
      nbf: now,
      exp: now + 3900,
      aio: "k2BgYDD6x3jLSW9uSapm1it3vtdnC66c40v9FcDtrEHYr6lBR9MA",
      azp: "11112222-bbbb-3333-cccc-4444dddd5555",
      azpacr: "2",
      idtyp: "app",
      oid: ENTRA_WORKLOAD_OID,
      rh: "0.AXkAv4j5cvGGr0GRqy180BHbRysXdG5WvkNIn_TmajmRLuN5AAA.",
      roles: ["Deploy.Write"],
      sub: ENTRA_WORKLOAD_OID,
      tid: ENTRA_TENANT,
      uti: "Nnh5xUqJZUOHWPk2TPnZAQ",
      ver: "2.0",
    }),
    agent: ENTRA_WORKLOAD_OID,
  },
  {
    file: "okta-service-apps.json",
    issuer: /^https:\/\/[a-z0-9-]+\.okta\.com\/oauth2\/\w+$/,
    jwksPath: "/v1/keys",
    agentClaim: "cid",
    header: {},
    // A client-credentials access token of a custom authorization server: `sub` is the client id too.
    claims: (now, aud) => ({
      ver: 1,
      jti: `AT.${randomUUID()}`,
      aud,
      iat: now,
      exp: now + 3600,
      cid: OKTA_CLIENT,
      scp: ["jitv.vend"],
      sub: OKTA_CLIENT,
    }),
    agent: OKTA_CLIENT,
  },
];

let issuers: Record<"RS256" | "ES256", TestIssuer>;

beforeAll(async () => {
  const [rs, es] = await Promise.all([startTestIssuer({ alg: "RS256" }), startTestIssuer({ alg: "ES256" })]);
  issuers = { RS256: rs, ES256: es };
});

afterAll(async () => {
  await Promise.all(Object.values(issuers ?? {}).map((idp) => idp.close()));
});

function load(file: string): IssuerProfile {
  const config = loadIssuerConfigFile(join(catalogue, file));
  expect(config.issuers).toHaveLength(1);
  return config.issuers[0] as IssuerProfile;
}

/** The catalogue profile with only its issuer and key URL pointed at a local issuer of its algorithm. */
function local(profile: IssuerProfile): { idp: TestIssuer; verifier: TokenVerifier } {
  const alg = profile.algorithms[0];
  if (alg !== "RS256" && alg !== "ES256") throw new Error(`no local issuer for ${alg}`);
  const idp = issuers[alg];
  const verifier = new TokenVerifier({
    config: { issuers: [{ ...profile, issuer: idp.issuer, jwksUri: idp.jwksUri }] },
  });
  return { idp, verifier };
}

async function sign(idp: TestIssuer, provider: Provider, profile: IssuerProfile, claims?: JWTPayload) {
  const now = Math.floor(Date.now() / 1000);
  const aud = profile.audiences[0] ?? "";
  return idp.sign(
    { ...(claims ?? provider.claims(now, aud)), iss: idp.issuer },
    { noDefaults: true, header: provider.header },
  );
}

/** A template whose resource holds the agent id as one path segment. */
const perAgent = parseTemplate({
  name: "artifacts-per-agent",
  zone: "workforce",
  roleArn: "arn:aws:iam::123456789012:role/jitv/artifacts",
  sessionPolicy: {
    Version: "2012-10-17",
    Statement: [
      { Effect: "Allow", Action: "s3:PutObject", Resource: "arn:aws:s3:::ci-artifacts/{{agent}}/*" },
    ],
  },
});
/** A template that names no identity: every verified agent id renders. */
const shared = parseTemplate({
  name: "artifacts-shared",
  zone: "workforce",
  roleArn: "arn:aws:iam::123456789012:role/jitv/artifacts",
  sessionPolicy: {
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::ci-artifacts/shared/*" }],
  },
});

/** What the vend asks STS for, for this identity and template (the same builder the broker uses). */
function stsRequest(identity: VerifiedIdentity, template = shared) {
  const now = new Date();
  const task: Task = {
    taskId: "tsk_catalogue",
    status: "active",
    template: template.name,
    zone: identity.zone,
    roleArn: template.roleArn,
    agent: { issuer: identity.issuer, id: identity.id },
    parameters: {},
    sessionPolicy: renderSessionPolicy(template, { task: "tsk_catalogue", agent: identity.id, params: {} }),
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + 900_000).toISOString(),
    issuedCount: 0,
  };
  return buildAssumeRoleRequest({ task, template, now });
}

it("tests every profile of the catalogue", () => {
  expect(readdirSync(catalogue).sort()).toEqual(providers.map((p) => p.file).sort());
});

describe.each(providers)("issuer profile $file", (provider) => {
  it("loads with the real loader, with the provider's issuer and key URL shapes and an agent claim", () => {
    const profile = load(provider.file);
    expect(profile.issuer).toMatch(provider.issuer);
    expect(profile.jwksUri).toBe(new URL(`${profile.issuer}${provider.jwksPath}`).href);
    expect(profile.kind).toBe("agent");
    expect(profile.claims.agent).toBe(provider.agentClaim);
  });

  it(`verifies a token of the provider's shape and identifies the workload by ${provider.agentClaim}`, async () => {
    const profile = load(provider.file);
    const { idp, verifier } = local(profile);
    const identity = await verifier.verify(await sign(idp, provider, profile), { kind: "agent" });
    expect(identity).toMatchObject({ profile: profile.name, kind: "agent", id: provider.agent });

    // Without the mapped claim the token identifies no workload: refused, naming only the claim.
    const { [provider.agentClaim]: _dropped, ...rest } = provider.claims(
      Math.floor(Date.now() / 1000),
      profile.audiences[0] ?? "",
    );
    const refused = await verifier.verify(await sign(idp, provider, profile, rest)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InvalidTokenError);
  });

  it("renders the agent into session tags and a source identity; a policy segment only when it holds no /", async () => {
    const profile = load(provider.file);
    const { idp, verifier } = local(profile);
    const identity = await verifier.verify(await sign(idp, provider, profile));

    const request = stsRequest(identity);
    // The exact id rides in the jitv:agent tag; SourceIdentity is its STS-safe form.
    expect(request.tags).toContainEqual({ Key: "jitv:agent", Value: provider.agent });
    expect(request.sourceIdentity).toMatch(/^[\w+=,.@-]{2,64}$/);
    if (/^[\w+=,.@-]{2,64}$/.test(provider.agent)) expect(request.sourceIdentity).toBe(provider.agent);
    else expect(request.sourceIdentity).toMatch(/-[0-9a-f]{16}$/);

    const render = () =>
      renderSessionPolicy(perAgent, { task: "tsk_catalogue", agent: identity.id, params: {} });
    if (provider.agent.includes("/")) {
      // A / would add path segments under the template's prefix: refused, the value never named.
      expect(render).toThrow(ForbiddenError);
      expect(render).toThrow(/^unsafe agent id$/);
    } else {
      expect(JSON.parse(render()).Statement[0].Resource).toBe(
        `arn:aws:s3:::ci-artifacts/${provider.agent}/*`,
      );
      expect(stsRequest(identity, perAgent).policy).toBe(render());
    }
  });

  it("refuses a hostile agent value the issuer vouches for: no wildcard, policy variable or segment injection", async () => {
    const profile = load(provider.file);
    const { idp, verifier } = local(profile);
    const claims = provider.claims(Math.floor(Date.now() / 1000), profile.audiences[0] ?? "");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable is the hostile value here
    for (const hostile of ["*", `${provider.agent}*`, "${aws:PrincipalTag/jitv:task}", "x/../../*"]) {
      const identity = await verifier.verify(
        await sign(idp, provider, profile, { ...claims, [provider.agentClaim]: hostile }),
      );
      expect(identity.id).toBe(hostile);
      const render = () =>
        renderSessionPolicy(perAgent, { task: "tsk_catalogue", agent: identity.id, params: {} });
      expect(render).toThrow(ForbiddenError);
      const tags = () =>
        buildSessionTags({ task: "tsk_catalogue", agent: identity.id, template: shared.name });
      expect(tags).toThrow(InvalidRequestError);
      expect(tags).toThrow(/^session tag "jitv:agent" value holds characters STS does not accept in tags$/);
    }
  });
});

describe("github-actions: why the agent is workflow_ref and not sub", () => {
  it("gives one agent id for one workflow on one branch, whichever trigger or environment set sub", async () => {
    const provider = providers[0] as Provider;
    const profile = load(provider.file);
    const { idp, verifier } = local(profile);
    const now = Math.floor(Date.now() / 1000);
    const aud = profile.audiences[0] ?? "";
    const subs = [
      "repo:octo-org/octo-repo:environment:prod",
      "repo:octo-org/octo-repo:ref:refs/heads/main",
      "repo:octo-org/octo-repo:job_workflow_ref:octo-org/shared-workflows/.github/workflows/release.yml@refs/tags/v2",
    ];
    const ids = new Set<string>();
    for (const sub of subs) {
      const identity = await verifier.verify(await sign(idp, provider, profile, githubClaims(now, aud, sub)));
      expect(identity.subject).toBe(sub);
      ids.add(identity.id);
    }
    expect([...ids]).toEqual([GITHUB_WORKFLOW]);
  });
});
