import { describe, expect, it } from "vitest";
import { newTaskId } from "../../../lib/domain/ids.js";
import {
  fitsBudget,
  nonWhitespaceLength,
  REVOCATION_POLICY_BUDGET_CHARS,
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
