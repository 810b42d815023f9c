import { describe, expect, it } from "vitest";
import { runLoad } from "../../../bench/load.bench.js";

// The load run's invariants (issue 14) on a few agents for a few seconds: the same code as
// `npm run bench -- load`, asserting what it checks and none of its timings.

describe("under load", () => {
  it("answers no 5xx, loses no task, and holds the vend rate and maxActivePerAgent exactly", {
    timeout: 180_000,
  }, async () => {
    const r = await runLoad({ agents: 3, seconds: 3 });
    expect(r.calls.vend.statuses["201"]).toBeGreaterThan(0);
    expect(r.tasks.ended).toBeGreaterThan(0);
    expect(r.tasks.live).toBeGreaterThan(0);
    expect(r.unexpected5xx).toBe(0);
    expect(r.lost).toEqual({ endedNotDenied: 0, liveNotAllowed: 0 });
    expect(r.rateLimit.allowed).toBeGreaterThanOrEqual(r.rateLimit.capacity);
    expect(r.rateLimit.allowed).toBeLessThanOrEqual(r.rateLimit.capacity + r.rateLimit.refilledAtMost);
    expect(r.maxActive).toMatchObject({
      allowed: r.maxActive.max,
      freedSlotAllowed: true,
      thenRefused: true,
    });
    expect(r.ok).toBe(true);
  });

  it("under injected faults, fails only with the contract's 503/429 and leaves no ended task usable", {
    timeout: 180_000,
  }, async () => {
    const r = await runLoad({
      agents: 3,
      seconds: 3,
      faults: { sts: 0.2, dynamodb: 0.05, sfn: 0.1, iam: 0.3, secrets: 0.2 },
    });
    expect(Object.values(r.injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    for (const call of Object.values(r.calls)) {
      for (const status of Object.keys(call.statuses)) expect(["200", "201", "429", "503"]).toContain(status);
    }
    expect(r.unexpected5xx).toBe(0);
    expect(r.lost).toEqual({ endedNotDenied: 0, liveNotAllowed: 0 });
    expect(r.rateLimit.allowed).toBeLessThanOrEqual(r.rateLimit.capacity + r.rateLimit.refilledAtMost);
    expect(r.maxActive.allowed).toBeLessThanOrEqual(r.maxActive.max);
    expect(r.ok).toBe(true);
  });
});
