import { describe, expect, it } from "vitest";
import { newTaskId } from "../../../lib/domain/ids.js";
import {
  fitsBudget,
  nonWhitespaceLength,
  placeRevocations,
  REVOCATION_POLICY_BUDGET_CHARS,
  renderOverflowPolicy,
  renderRevocationPolicy,
} from "../../../lib/revocation/policy.js";

describe("renderRevocationPolicy", () => {
  it("denies every action of the listed tasks' sessions, ids sorted and deduplicated, as compact JSON", () => {
    const document = renderRevocationPolicy({ taskIds: ["tsk_c", "tsk_a", "tsk_b", "tsk_a"] });

    expect(document).toBe(
      '{"Version":"2012-10-17","Statement":[{"Sid":"JitvRevokedTasks","Effect":"Deny","Action":"*",' +
        '"Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/jitv:task":["tsk_a","tsk_b","tsk_c"]}}}]}',
    );
  });

  it("adds a token-issue-time statement when a cutoff is given", () => {
    const document = renderRevocationPolicy({ taskIds: ["tsk_b"], issuedBefore: "2025-06-01T12:00:01Z" });

    expect(JSON.parse(document ?? "")).toStrictEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "JitvRevokedTasks",
          Effect: "Deny",
          Action: "*",
          Resource: "*",
          Condition: { StringEquals: { "aws:PrincipalTag/jitv:task": ["tsk_b"] } },
        },
        {
          Sid: "JitvRevokedBefore",
          Effect: "Deny",
          Action: "*",
          Resource: "*",
          Condition: { DateLessThan: { "aws:TokenIssueTime": "2025-06-01T12:00:01Z" } },
        },
      ],
    });
  });

  it("renders only the cutoff statement when no task is listed", () => {
    const document = renderRevocationPolicy({ taskIds: [], issuedBefore: "2025-06-01T12:00:01Z" });

    expect(document).toBe(
      '{"Version":"2012-10-17","Statement":[{"Sid":"JitvRevokedBefore","Effect":"Deny","Action":"*",' +
        '"Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2025-06-01T12:00:01Z"}}}]}',
    );
  });

  it("returns undefined when there is nothing to deny", () => {
    expect(renderRevocationPolicy({ taskIds: [] })).toBeUndefined();
  });

  it("does not depend on the order the ids come in", () => {
    const ids = Array.from({ length: 30 }, (_, i) => `tsk_${String(i).padStart(2, "0")}`);

    expect(renderRevocationPolicy({ taskIds: [...ids].reverse() })).toBe(
      renderRevocationPolicy({ taskIds: ids }),
    );
  });
});

describe("fitsBudget", () => {
  it("counts non-whitespace characters only", () => {
    const pretty = '{\n  "a": [ 1, 2 ]\t}\r\n';

    expect(nonWhitespaceLength(pretty)).toBe('{"a":[1,2]}'.length);
    expect(fitsBudget(pretty, 11)).toBe(true);
    expect(fitsBudget(pretty, 10)).toBe(false);
  });

  it("defaults to a 6144-character budget", () => {
    expect(REVOCATION_POLICY_BUDGET_CHARS).toBe(6144);
    expect(fitsBudget("x".repeat(6144))).toBe(true);
    expect(fitsBudget("x".repeat(6145))).toBe(false);
    expect(fitsBudget(`${"x".repeat(6144)}   \n`)).toBe(true);
  });

  it("holds about 180 task ids in the default budget", () => {
    const ids = (n: number) => Array.from({ length: n }, () => newTaskId());

    expect(fitsBudget(renderRevocationPolicy({ taskIds: ids(180) }) ?? "")).toBe(true);
    expect(fitsBudget(renderRevocationPolicy({ taskIds: ids(190) }) ?? "")).toBe(false);
  });
});

describe("placeRevocations", () => {
  const id = (n: number) => `tsk_${String(n).padStart(26, "0")}`;

  it("never moves a placed id, puts new ids in the first slot with room, and refuses what cannot fit", () => {
    const first = placeRevocations({
      tasks: Array.from({ length: 400 }, (_, n) => ({ taskId: id(n) })),
      inlineBudget: 6144,
      overflowSlots: 2,
    });
    if (!first) throw new Error("expected a placement");
    // A document is ~150 characters plus 33 per 30-character id ("…",): 181 ids fit 6,144.
    expect(first.slots.map((s) => s.length)).toEqual([181, 181, 38]);
    expect(first.placed.get(id(0))).toBe(0);
    expect(first.placed.get(id(399))).toBe(2);
    // Pruning frees room in slot 0; an id placed in slot 2 stays there, the new one fills slot 0.
    const kept = [...first.placed]
      .filter(([taskId]) => taskId !== id(3))
      .map(([taskId, slot]) => ({ taskId, slot }));
    const second = placeRevocations({
      tasks: [...kept, { taskId: id(1000) }],
      inlineBudget: 6144,
      overflowSlots: 2,
    });
    expect([...(second?.placed ?? [])]).toEqual([[id(1000), 0]]);
    expect(second?.slots[2]).toContain(id(399));
    expect(
      placeRevocations({
        tasks: Array.from({ length: 600 }, (_, n) => ({ taskId: id(n) })),
        inlineBudget: 6144,
        overflowSlots: 2,
      }),
    ).toBeUndefined();
  });

  it("gives back the last ids of a slot that shrank, and keeps every document within its quota", () => {
    const tasks = Array.from({ length: 100 }, (_, n) => ({ taskId: id(n), slot: 0 }));
    const placement = placeRevocations({ tasks, inlineBudget: 2000, overflowSlots: 1 });
    if (!placement) throw new Error("expected a placement");
    // 2,000 characters hold 55 ids; the other 45 move to the overflow policy.
    expect(placement.slots[0]?.length).toBe(55);
    expect(placement.placed.size).toBe(45);
    expect([...placement.placed.values()].every((slot) => slot === 1)).toBe(true);
    expect(
      nonWhitespaceLength(renderRevocationPolicy({ taskIds: placement.slots[0] ?? [] }) ?? ""),
    ).toBeLessThanOrEqual(2000);
    expect(nonWhitespaceLength(renderOverflowPolicy(placement.slots[1] ?? []))).toBeLessThanOrEqual(6144);
  });
});
