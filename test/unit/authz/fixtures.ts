import { readFileSync } from "node:fs";
import type { PolicySnapshot, PolicySource } from "../../../lib/authz/cedar-authorizer.js";
import type { VerifiedIdentity, Zone } from "../../../lib/domain/identity.js";
import type { Task } from "../../../lib/domain/task.js";
import { parseTemplate, type TaskTemplate } from "../../../lib/domain/template.js";

export const AGENTS = "https://agents.example";
export const CUSTOMER_AGENTS = "https://customer-agents.example";
export const USERS = "https://users.example";

/** Tuesday, inside business hours. */
export const TUESDAY_10 = new Date("2026-03-03T10:00:00.000Z");
/** Sunday night. */
export const SUNDAY_03 = new Date("2026-03-01T03:00:00.000Z");

export function agent(id: string, overrides: Partial<VerifiedIdentity> = {}): VerifiedIdentity {
  return {
    profile: "agents",
    issuer: AGENTS,
    kind: "agent",
    zone: "workforce",
    subject: id,
    id,
    groups: [],
    expiresAt: 2_000_000_000,
    claims: {},
    ...overrides,
  };
}

export function customerAgent(id: string): VerifiedIdentity {
  return agent(id, { profile: "customer-agents", issuer: CUSTOMER_AGENTS, zone: "customer" });
}

export function user(
  id: string,
  tenant?: string,
  overrides: Partial<VerifiedIdentity> = {},
): VerifiedIdentity {
  return agent(id, {
    profile: "users",
    issuer: USERS,
    kind: "user",
    zone: "customer",
    ...(tenant === undefined ? {} : { tenant }),
    ...overrides,
  });
}

export function template(name: string, overrides: Record<string, unknown> = {}): TaskTemplate {
  return parseTemplate({
    name,
    zone: "workforce",
    roleArn: "arn:aws:iam::123456789012:role/jitv/reader",
    sessionPolicy: {
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Action: ["s3:GetObject"], Resource: ["arn:aws:s3:::reports/*"] }],
    },
    parameters: { prefix: { pattern: "^[a-z0-9-]{1,32}$" } },
    agents: [{ issuer: AGENTS, subjects: ["agent-a"] }],
    ttl: { defaultSeconds: 900, maxSeconds: 3600 },
    ...overrides,
  });
}

export function customerTemplate(name: string, overrides: Record<string, unknown> = {}): TaskTemplate {
  return template(name, {
    zone: "customer",
    agents: [{ issuer: CUSTOMER_AGENTS, subjects: ["support-agent"] }],
    ...overrides,
  });
}

export function task(overrides: Partial<Task> = {}): Task {
  return {
    taskId: "tsk_01",
    status: "active",
    template: "reports-read",
    zone: "workforce" as Zone,
    roleArn: "arn:aws:iam::123456789012:role/jitv/reader",
    agent: { issuer: AGENTS, id: "agent-a" },
    parameters: { prefix: "q3" },
    sessionPolicy: "{}",
    createdAt: "2026-03-03T09:00:00.000Z",
    expiresAt: "2026-03-03T09:30:00.000Z",
    issuedCount: 1,
    ...overrides,
  };
}

/** The Cedar text of `examples/policies/<name>.cedar` (the baseline is built in: `BASELINE_POLICIES`). */
export function examplePolicy(name: string): string {
  return readFileSync(new URL(`../../../examples/policies/${name}.cedar`, import.meta.url), "utf8");
}

/** The commented-out policy between `// BEGIN EXAMPLE` and `// END EXAMPLE`, uncommented. */
export function uncommentedExample(text: string): string {
  const lines = text.split("\n");
  const begin = lines.findIndex((l) => l.trim() === "// BEGIN EXAMPLE");
  const end = lines.findIndex((l) => l.trim() === "// END EXAMPLE");
  if (begin < 0 || end < begin) throw new Error("no BEGIN/END EXAMPLE block");
  return lines
    .slice(begin + 1, end)
    .map((l) => l.replace(/^\/\/ ?/, ""))
    .join("\n");
}

/** An in-memory policy store: set `snapshot` to publish a new version; counts reads. */
export class FakePolicyStore implements PolicySource {
  snapshot: PolicySnapshot;
  reads = 0;
  failure: Error | undefined;

  constructor(text = "", version = "v1") {
    this.snapshot = { version, text };
  }

  async current(): Promise<PolicySnapshot> {
    this.reads++;
    if (this.failure) throw this.failure;
    return this.snapshot;
  }
}
