import { describe, expect, it } from "vitest";
import { newTaskId } from "../../../lib/domain/ids.js";
import { DynamoRevocationStore } from "../../../lib/revocation/dynamo-revocation-store.js";
import { DynamoRolePolicyWriter } from "../../../lib/revocation/dynamo-role-policy-writer.js";
import { DEFAULT_OVERFLOW_POLICIES, nonWhitespaceLength } from "../../../lib/revocation/policy.js";
import { REVOCATION_POLICY_NAME } from "../../../lib/revocation/revocation-store.js";
import { revocationDocument, sessionDecision } from "../../../lib/sandbox/routes.js";
import { createTestTable } from "../../support/dynamodb.js";

// Revocation at real scale (CONTRACT.md section 6): a role whose 1,000 tasks ended within one
// credential lifetime, with 100 still live, on DynamoDB Local and the sandbox's IAM emulation
// (IAM's quotas enforced), checked with the same policy engine as `simulate`.

describe("revocation capacity", () => {
  it("denies every one of 1,000 ended tasks on one role and no live one, without the dated cutoff", async () => {
    const table = await createTestTable();
    const writer = new DynamoRolePolicyWriter({
      client: table.doc,
      tableName: table.tableName,
      overflowSlots: () => DEFAULT_OVERFLOW_POLICIES,
    });
    const fallbacks: string[] = [];
    const now = new Date();
    const store = new DynamoRevocationStore({
      client: table.doc,
      tableName: table.tableName,
      writer,
      now: () => now,
      onFallback: (_, cutoff) => fallbacks.push(cutoff),
    });
    const role = "arn:aws:iam::123456789012:role/jitv/capacity";
    const ended = Array.from({ length: 1000 }, () => newTaskId());
    const live = Array.from({ length: 100 }, () => newTaskId());
    const credentialsExpireAt = new Date(now.getTime() + 15 * 60_000).toISOString();
    // Ends arrive in bursts, as task completions and deadlines do.
    for (let i = 0; i < ended.length; i += 100) {
      await Promise.all(
        ended.slice(i, i + 100).map((taskId) => store.revoke({ roleArn: role, taskId, credentialsExpireAt })),
      );
    }

    expect(fallbacks).toEqual([]);
    // Every document stays within IAM's quotas (the sandbox writer would have refused otherwise).
    const inline = (await writer.get(role, REVOCATION_POLICY_NAME)) ?? "";
    expect(nonWhitespaceLength(inline)).toBeLessThanOrEqual(6144);
    const overflow = await Promise.all(
      (await writer.overflowPolicies(role)).map((id) => writer.getOverflow(role, id)),
    );
    for (const document of overflow) expect(nonWhitespaceLength(document)).toBeLessThanOrEqual(6144);

    const revocationPolicy = await revocationDocument(writer, role);
    const issuedAt = new Date(now.getTime() - 60_000);
    const decide = (taskId: string) =>
      sessionDecision({ roleArn: role, taskId, revocationPolicy, issuedAt, now });
    const endedDecisions = await Promise.all(ended.map(decide));
    const liveDecisions = await Promise.all(live.map(decide));
    expect(endedDecisions.filter((d) => d !== "ExplicitlyDenied")).toEqual([]);
    expect(liveDecisions.filter((d) => d !== "Allowed")).toEqual([]);
  }, 120_000);
});
