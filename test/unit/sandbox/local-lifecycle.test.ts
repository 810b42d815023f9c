import { describe, expect, it } from "vitest";
import type { TaskLifecycle } from "../../../lib/app/lifecycle-steps.js";
import { LocalLifecycleRunner } from "../../../lib/sandbox/local-lifecycle.js";

// The one ASL file, run by the sandbox's engine: a wait whose function fails must fail closed.
function recordingSteps(fail: "registerToken" | "registerApprovalToken") {
  const calls: string[] = [];
  const step =
    (name: string) =>
    async (input: Record<string, unknown>): Promise<void> => {
      calls.push(`${name}${input.outcome ? `:${String(input.outcome)}` : ""}`);
      if (name === fail) throw new Error(`${name} failed`);
    };
  const steps = {
    registerToken: step("registerToken"),
    registerApprovalToken: step("registerApprovalToken"),
    approvalRefused: step("approvalRefused"),
    revoke: step("revoke"),
    rotateSecrets: step("rotateSecrets"),
    close: step("close"),
    lifecycleFailed: step("lifecycleFailed"),
  } as unknown as TaskLifecycle;
  return { steps, calls };
}

describe("LocalLifecycleRunner on the lifecycle ASL", () => {
  const now = new Date("2026-03-02T10:00:00.000Z");
  const expiresAt = new Date(now.getTime() + 900_000).toISOString();

  it("revokes at once when WaitForTaskEnd's function fails (WaitFailed), never leaving the task to the backstop", async () => {
    const { steps, calls } = recordingSteps("registerToken");
    const runner = new LocalLifecycleRunner({ steps: () => steps, now: () => now });
    await runner.start({ taskId: "tsk_wait_fails", expiresAt, status: "active" });
    await runner.execution("tsk_wait_fails");
    expect(calls).toEqual(["registerToken", "revoke:expired", "rotateSecrets", "close"]);
    runner.close();
  });

  it("revokes (denying the pending task) when WaitForApproval's function fails", async () => {
    const { steps, calls } = recordingSteps("registerApprovalToken");
    const runner = new LocalLifecycleRunner({ steps: () => steps, now: () => now });
    await runner.start({ taskId: "tsk_approval_fails", expiresAt, status: "pending_approval" });
    await runner.execution("tsk_approval_fails");
    expect(calls).toEqual(["registerApprovalToken", "revoke:expired", "rotateSecrets", "close"]);
    runner.close();
  });
});
