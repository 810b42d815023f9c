import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { runSimulation, type Simulation } from "@cloud-copilot/iam-simulate";
import { describe, expect, it } from "vitest";
import { renderSessionPolicy } from "../../../lib/domain/render.js";
import { buildSessionTags } from "../../../lib/domain/sts-request.js";
import { parseTemplate, type TaskTemplate } from "../../../lib/domain/template.js";

// A user token for tenant A must never yield credentials that reach tenant B: proved by IAM
// policy simulation over every statement of every customer-zone example template, for each
// action, resource pattern and condition it grants with.

const dir = resolve(import.meta.dirname, "../../../examples/templates");
const customerTemplates = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .map((f) => parseTemplate(JSON.parse(readFileSync(join(dir, f), "utf8"))))
  .filter((t) => t.zone === "customer");

const TASK_ID = "tsk_0123456789abcdefghjkmnpqrs";
const AGENT = "support-agent";
const USER = "alice";

/** Condition operators whose values this test knows how to turn into a request that satisfies them. */
const STRING_OPERATORS = new Set(["StringEquals", "StringLike", "ArnEquals", "ArnLike"]);

/** A value each declared parameter accepts (enum's first, else a short slug the pattern must accept). */
function sampleParameters(template: TaskTemplate): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [name, p] of Object.entries(template.parameters ?? {})) {
    const value = p.enum?.[0] ?? "q3";
    if (p.pattern && !new RegExp(p.pattern, "u").test(value))
      throw new Error(`add a sample for ${template.name}.${name}`);
    params[name] = value;
  }
  return params;
}

/** One concrete value a template pattern grants, for one tenant: placeholders filled, wildcards instantiated. */
function concrete(pattern: string, tenant: string, params: Record<string, string>): string {
  let value = pattern
    .replaceAll("{{tenant}}", tenant)
    .replaceAll("{{user}}", USER)
    .replaceAll("{{agent}}", AGENT)
    .replaceAll("{{task}}", TASK_ID);
  for (const [name, v] of Object.entries(params)) value = value.replaceAll(`{{params.${name}}}`, v);
  return value.replaceAll("*", "report.csv").replaceAll("?", "x");
}

/** One request a statement grants: its action on a resource, with the condition keys it requires. */
interface Probe {
  /** The statement's index in the session policy. */
  readonly index: number;
  readonly statement: string;
  readonly action: string;
  readonly resource: string;
  readonly context: Readonly<Record<string, string>>;
}

/** Where a statement names the tenant: its resource, or one of its condition keys. */
type Dimension = "resource" | `condition ${string}`;

/**
 * The requests each Allow statement grants, with every dimension carrying `{{tenant}}`
 * concrete for `tenantOf(dimension)`: so one call can ask for all of acme's requests, and
 * another for acme's request with only its `s3:prefix` moved to globex.
 */
function probes(
  template: TaskTemplate,
  params: Record<string, string>,
  tenantOf: (statement: number, dimension: Dimension) => string,
): Probe[] {
  const out: Probe[] = [];
  template.sessionPolicy.Statement.forEach((statement, index) => {
    if (statement.Effect !== "Allow") return;
    const label = `${template.name} statement ${statement.Sid ?? index}`;
    if (!statement.Action || !statement.Resource)
      throw new Error(`${label}: only Action and Resource statements are simulated here`);
    const context: Record<string, string> = {};
    for (const [operator, block] of Object.entries(statement.Condition ?? {})) {
      if (!STRING_OPERATORS.has(operator)) throw new Error(`${label}: teach this test condition ${operator}`);
      for (const [key, values] of Object.entries(block as Record<string, string | string[]>)) {
        const [first] = [values].flat();
        if (first === undefined) throw new Error(`${label}: ${operator} ${key} has no value`);
        context[key] = concrete(first, tenantOf(index, `condition ${key}`), params);
      }
    }
    for (const action of [statement.Action].flat()) {
      for (const pattern of [statement.Resource].flat()) {
        out.push({
          index,
          statement: label,
          action,
          resource: concrete(pattern, tenantOf(index, "resource"), params),
          context,
        });
      }
    }
  });
  return out;
}

/** The dimensions of each Allow statement that name the tenant. */
function tenantDimensions(template: TaskTemplate): Map<number, Dimension[]> {
  const out = new Map<number, Dimension[]>();
  template.sessionPolicy.Statement.forEach((statement, index) => {
    if (statement.Effect !== "Allow") return;
    const dimensions: Dimension[] = [];
    if ([statement.Resource ?? []].flat().some((r) => r.includes("{{tenant}}"))) dimensions.push("resource");
    for (const block of Object.values(statement.Condition ?? {})) {
      for (const [key, values] of Object.entries(block as Record<string, string | string[]>)) {
        if ([values].flat().some((v) => v.includes("{{tenant}}"))) dimensions.push(`condition ${key}`);
      }
    }
    out.set(index, dimensions);
  });
  return out;
}

/**
 * IAM's verdict on one request made with the task's credentials: an assumed-role session whose
 * role allows everything, narrowed by the rendered session policy, with the task's session tags.
 * (The sandbox's `simulateTaskRequest` builds the same request but takes no request-specific
 * condition keys such as `s3:prefix`.)
 */
async function allowed(template: TaskTemplate, sessionPolicy: string, probe: Probe): Promise<boolean> {
  const [, , , , account, rolePath] = template.roleArn.split(":");
  const roleName = rolePath?.split("/").at(-1);
  const tags = buildSessionTags({
    task: TASK_ID,
    agent: AGENT,
    template: template.name,
    user: USER,
    tenant: "acme",
  });
  const simulation: Simulation = {
    request: {
      principal: `arn:aws:sts::${account}:assumed-role/${roleName}/${TASK_ID}`,
      action: probe.action,
      // S3 ARNs carry no account: the bucket is taken to be in the role's account.
      resource: { resource: probe.resource, accountId: probe.resource.split(":")[4] || (account as string) },
      contextVariables: {
        "aws:PrincipalArn": template.roleArn,
        "aws:PrincipalAccount": account as string,
        "aws:PrincipalType": "AssumedRole",
        "aws:SecureTransport": "true",
        ...Object.fromEntries(tags.map((tag) => [`aws:PrincipalTag/${tag.Key}`, tag.Value])),
        ...probe.context,
      },
    },
    identityPolicies: [
      {
        name: "role-policy",
        policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] },
      },
    ],
    sessionPolicy: JSON.parse(sessionPolicy),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  };
  const result = await runSimulation(simulation, { simulationMode: "Strict" });
  if (result.resultType !== "single")
    throw new Error(`${probe.statement}: cannot simulate ${probe.action} on ${probe.resource}`);
  return result.overallResult === "Allowed";
}

describe("tenant isolation of customer-zone templates", () => {
  it("checks every customer-zone example template, one of them granting under a condition", () => {
    const names = customerTemplates.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(["tenant-reports-list", "tenant-reports-read"]));
    expect(customerTemplates.some((t) => t.sessionPolicy.Statement.some((s) => s.Condition))).toBe(true);
  });

  for (const template of customerTemplates) {
    it(`${template.name}: tenant acme's credentials reach acme's resources and never globex's, statement by statement`, async () => {
      const params = sampleParameters(template);
      const sessionPolicy = renderSessionPolicy(template, {
        task: TASK_ID,
        agent: AGENT,
        user: USER,
        tenant: "acme",
        params,
      });

      // Every request every statement grants acme is allowed.
      const own = probes(template, params, () => "acme");
      expect(own.length).toBeGreaterThan(0);
      for (const probe of own) {
        expect(
          await allowed(template, sessionPolicy, probe),
          `${probe.statement}: ${JSON.stringify(probe)}`,
        ).toBe(true);
      }

      // Every statement names the tenant somewhere, and moving any one of those places (or all
      // of them) to globex is denied.
      const dimensions = tenantDimensions(template);
      for (const [index, named] of dimensions) {
        expect(
          named.length,
          `${template.name} statement ${index} is not scoped to the tenant`,
        ).toBeGreaterThan(0);
        for (const moved of [...named.map((d) => [d]), named]) {
          const crossing = probes(template, params, (statement, dimension) =>
            statement === index && moved.includes(dimension) ? "globex" : "acme",
          ).filter((probe) => probe.index === index);
          expect(crossing.length).toBeGreaterThan(0);
          for (const probe of crossing) {
            expect(
              await allowed(template, sessionPolicy, probe),
              `${probe.statement} with ${moved.join(" and ")} of globex: ${JSON.stringify(probe)}`,
            ).toBe(false);
          }
        }
      }
    });
  }
});
