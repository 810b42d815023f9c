import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { renderSessionPolicy } from "../../../lib/domain/render.js";
import { buildSessionTags } from "../../../lib/domain/sts-request.js";
import { parseTemplate, type TaskTemplate } from "../../../lib/domain/template.js";
import { simulateTaskRequest } from "../../../lib/sandbox/simulate.js";

// A user token for tenant A must never yield credentials that reach tenant B: proved by IAM
// policy simulation over every customer-zone example template, for each action and resource
// pattern it grants.

const dir = resolve(import.meta.dirname, "../../../examples/templates");
const customerTemplates = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .map((f) => parseTemplate(JSON.parse(readFileSync(join(dir, f), "utf8"))))
  .filter((t) => t.zone === "customer");

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

/** Concrete resources a granted pattern covers, for one tenant. */
function concreteResources(template: TaskTemplate, tenant: string, params: Record<string, string>) {
  const out: { action: string; resource: string }[] = [];
  for (const statement of template.sessionPolicy.Statement) {
    if (statement.Effect !== "Allow" || !statement.Action || !statement.Resource) continue;
    const actions = [statement.Action].flat();
    for (const pattern of [statement.Resource].flat()) {
      if (!pattern.includes("{{tenant}}")) continue;
      let arn = pattern.replaceAll("{{tenant}}", tenant).replaceAll("*", "report.csv");
      for (const [name, value] of Object.entries(params)) arn = arn.replaceAll(`{{params.${name}}}`, value);
      for (const action of actions) out.push({ action, resource: arn });
    }
  }
  return out;
}

describe("tenant isolation of customer-zone templates", () => {
  it("has customer-zone example templates to check", () => {
    expect(customerTemplates.length).toBeGreaterThan(0);
  });

  for (const template of customerTemplates) {
    it(`${template.name}: tenant acme's credentials reach acme's resources and never globex's`, async () => {
      const params = sampleParameters(template);
      const taskId = "tsk_0123456789abcdefghjkmnpqrs";
      const sessionPolicy = renderSessionPolicy(template, {
        task: taskId,
        agent: "support-agent",
        user: "alice",
        tenant: "acme",
        params,
      });
      const session = {
        roleArn: template.roleArn,
        rolePolicies: [
          JSON.stringify({
            Version: "2012-10-17",
            Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }],
          }),
        ],
        sessionPolicy,
        sessionTags: buildSessionTags({
          task: taskId,
          agent: "support-agent",
          template: template.name,
          user: "alice",
          tenant: "acme",
        }),
        sessionName: taskId,
      };
      const own = concreteResources(template, "acme", params);
      expect(own.length).toBeGreaterThan(0);
      for (const request of own) {
        expect(await simulateTaskRequest({ ...session, ...request }), request.resource).toMatchObject({
          allowed: true,
        });
      }
      for (const request of concreteResources(template, "globex", params)) {
        expect(await simulateTaskRequest({ ...session, ...request }), request.resource).toMatchObject({
          allowed: false,
        });
      }
    });
  }
});
