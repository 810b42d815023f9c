import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { BASELINE_POLICIES } from "../../../lib/authz/baseline.js";
import { validatePolicySet } from "../../../lib/authz/cedar-policy-set.js";
import { examplePolicy, uncommentedExample } from "./fixtures.js";

const files = readdirSync(new URL("../../../examples/policies/", import.meta.url))
  .filter((f) => f.endsWith(".cedar"))
  .map((f) => f.replace(/\.cedar$/, ""))
  .sort();

describe("examples/policies", () => {
  it("ships the approvals, customer-zone, tenant-reports and business-hours sets (the baseline is built in)", () => {
    expect(files).toEqual(["approvals", "business-hours", "customer-zone", "tenant-reports"]);
  });

  it("has a built-in baseline that validates against the schema", () => {
    expect(validatePolicySet(BASELINE_POLICIES).map((p) => p.id)).toEqual([
      "zone-boundary",
      "customer-tenant-boundary",
      "owner-agent-task-actions",
      "zone-admins",
      "zone-approvers",
      "no-self-approval",
    ]);
  });

  it.each(files)("%s.cedar validates against the schema", (name) => {
    expect(() => validatePolicySet(examplePolicy(name))).not.toThrow();
  });

  it("uses every @id once across all files and the built-in baseline, so they can be stored side by side", () => {
    const texts = [BASELINE_POLICIES, ...files.map(examplePolicy)];
    const ids = texts.flatMap((text) => validatePolicySet(text).map((p) => p.id));

    expect(ids.length).toBeGreaterThan(5);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("keeps the business-hours rule commented out, and the rule itself validates", () => {
    const text = examplePolicy("business-hours");

    expect(validatePolicySet(text)).toEqual([]);
    expect(validatePolicySet(uncommentedExample(text)).map((p) => p.id)).toEqual([
      "db-maintenance-business-hours",
    ]);
  });

  it("gives every forbid a reason a caller can be shown", () => {
    const forbids = [BASELINE_POLICIES, ...files.map(examplePolicy)].flatMap((text) =>
      validatePolicySet(text).filter((p) => p.effect === "forbid"),
    );

    expect(forbids.length).toBeGreaterThan(0);
    for (const policy of forbids) expect(policy.reason, policy.id).toMatch(/\S/);
  });
});
