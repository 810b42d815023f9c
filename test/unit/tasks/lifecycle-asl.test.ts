import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { sandboxDefinition } from "../../../lib/sandbox/local-lifecycle.js";
import { LIFECYCLE_ASL_PATH, LIFECYCLE_STATES } from "../../../lib/tasks/lifecycle.js";

const validate = createRequire(import.meta.url)("asl-validator") as (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errors: unknown[] };

describe("infra/state-machines/task-lifecycle.asl.json", () => {
  const raw = readFileSync(LIFECYCLE_ASL_PATH, "utf8");

  it("is valid Amazon States Language once its function ARNs are substituted", () => {
    const result = validate(sandboxDefinition());
    expect(result.errors).toEqual([]);
    expect(result.isValid).toBe(true);
  });

  it("names every Lambda state's function by a substitution, and nothing else", () => {
    const substitutions = [...raw.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]);
    expect(new Set(substitutions)).toEqual(
      new Set(Object.values(LIFECYCLE_STATES).map((s) => s.substitution)),
    );
    const definition = JSON.parse(raw) as {
      States: Record<string, { Parameters?: { FunctionName?: string } }>;
    };
    for (const [state, { substitution }] of Object.entries(LIFECYCLE_STATES)) {
      expect(definition.States[state]?.Parameters?.FunctionName).toBe(`\${${substitution}}`);
    }
  });

  it("reads the deadline where AWS (state input) and the local engine (effective input) both find it", () => {
    const definition = JSON.parse(raw) as { States: Record<string, Record<string, unknown>> };
    const prepare = definition.States.Prepare as { Parameters: { Payload: Record<string, string> } };
    const wait = definition.States.WaitForTaskEnd as {
      TimeoutSecondsPath: string;
      Parameters: { Payload: Record<string, string> };
    };
    expect(wait.TimeoutSecondsPath).toBe("$.Payload.timeoutSeconds");
    expect(prepare.Parameters.Payload["timeoutSeconds.$"]).toBe("$.timeoutSeconds"); // state input (AWS)
    expect(wait.Parameters.Payload["timeoutSeconds.$"]).toBe("$.Payload.timeoutSeconds"); // effective input (local)
  });

  it("retries revocation at least 6 times with backoff before giving up", () => {
    const definition = JSON.parse(raw) as {
      States: Record<
        string,
        { Retry?: { MaxAttempts: number; BackoffRate: number }[]; Catch?: { Next: string }[] }
      >;
    };
    const revoke = definition.States.Revoke;
    expect(revoke?.Retry?.[0]?.MaxAttempts).toBeGreaterThanOrEqual(6);
    expect(revoke?.Retry?.[0]?.BackoffRate).toBeGreaterThan(1);
    expect(revoke?.Catch?.[0]?.Next).toBe("LifecycleFailed");
  });
});
