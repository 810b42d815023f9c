import type { Authorizer, Decision, VendDecisionRequest } from "./authorizer.js";

/**
 * The simple form of authorization: a template's `agents` list (issuer + subjects).
 * The agent's exact issuer and mapped agent id must both be listed. No wildcards.
 */
export class TemplateAllowListAuthorizer implements Authorizer {
  async authorizeVend({ agent, template }: VendDecisionRequest): Promise<Decision> {
    const policy = `template:${template.name}:agents`;
    const listed = template.agents.some((a) => a.issuer === agent.issuer && a.subjects.includes(agent.id));
    return listed
      ? { allowed: true, reason: "agent is in the template's agents list", policies: [policy] }
      : { allowed: false, reason: "agent is not in the template's agents list", policies: [policy] };
  }
}
