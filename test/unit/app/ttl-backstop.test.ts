import { marshall } from "@aws-sdk/util-dynamodb";
import { describe, expect, it } from "vitest";
import { handleTtlRecords, isTtlLeaseExpiry, type TtlStreamRecord } from "../../../lib/app/ttl-backstop.js";
import { recordingBackstopLifecycle } from "../../support/fakes.js";

const ttl = { type: "Service", principalId: "dynamodb.amazonaws.com" };
const record = (
  seq: string,
  image: Record<string, unknown>,
  identity: TtlStreamRecord["userIdentity"] | "none" = ttl,
) => ({
  eventName: "REMOVE",
  ...(identity === "none" ? {} : { userIdentity: identity }),
  dynamodb: { SequenceNumber: seq, OldImage: marshall(image) as Record<string, unknown> },
});

describe("the TTL stream backstop", () => {
  it("acts only on leases removed by the TTL service", () => {
    expect(isTtlLeaseExpiry(record("1", { type: "lease", leaseKind: "task", taskId: "t" }))).toBe(true);
    expect(isTtlLeaseExpiry(record("2", { type: "lease", taskId: "t" }, "none"))).toBe(false); // a user's DeleteItem
    expect(
      isTtlLeaseExpiry(record("3", { type: "lease", taskId: "t" }, { type: "Service", principalId: "x" })),
    ).toBe(false);
    expect(isTtlLeaseExpiry(record("4", { type: "replay" }))).toBe(false);
    expect(isTtlLeaseExpiry({ ...record("5", { type: "lease" }), eventName: "MODIFY" })).toBe(false);
  });

  it("runs the task backstop for task leases and pruning for prune leases", async () => {
    const { lifecycle, calls } = recordingBackstopLifecycle();
    const out = await handleTtlRecords(
      [
        record("1", { type: "lease", leaseKind: "task", taskId: "tsk_a" }),
        record("2", { type: "lease", leaseKind: "prune", taskId: "tsk_b", roleArn: "arn:aws:iam::1:role/r" }),
        record("3", { type: "lease", leaseKind: "task", taskId: "tsk_c" }, "none"),
      ],
      lifecycle,
    );
    expect(out).toEqual({ batchItemFailures: [] });
    expect(calls).toEqual(["backstop tsk_a", "prune arn:aws:iam::1:role/r tsk_b"]);
  });

  it("reports the failed record and every later one as batch item failures", async () => {
    const { lifecycle, calls } = recordingBackstopLifecycle("tsk_b");
    const out = await handleTtlRecords(
      [
        record("1", { type: "lease", leaseKind: "task", taskId: "tsk_a" }),
        record("2", { type: "lease", leaseKind: "task", taskId: "tsk_b" }),
        record("3", { type: "lease", leaseKind: "task", taskId: "tsk_c" }),
      ],
      lifecycle,
    );
    expect(out).toEqual({ batchItemFailures: [{ itemIdentifier: "2" }, { itemIdentifier: "3" }] });
    expect(calls).toEqual(["backstop tsk_a"]);
  });
});
