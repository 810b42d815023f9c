import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type { OverdueTasks } from "../tasks/overdue-tasks.js";
import type { TaskLifecycle } from "./lifecycle-steps.js";

/** The parts of a DynamoDB stream record (Lambda event shape) the backstop reads. */
export interface TtlStreamRecord {
  readonly eventName?: string;
  readonly userIdentity?: { readonly type?: string; readonly principalId?: string };
  readonly dynamodb?: {
    readonly SequenceNumber?: string;
    readonly OldImage?: Record<string, unknown>;
  };
}

/** DynamoDB's TTL service principal: only deletions made by TTL carry it. */
export const TTL_PRINCIPAL = "dynamodb.amazonaws.com";

/**
 * The event source mapping's filter (Lambda filter-pattern syntax): `REMOVE` records made by
 * the TTL service, of lease items. The CDK stack installs exactly this; the sandbox's stream
 * poller applies {@link isTtlLeaseExpiry}, its twin.
 */
export const TTL_STREAM_FILTER_PATTERN = {
  eventName: ["REMOVE"],
  userIdentity: { type: ["Service"], principalId: [TTL_PRINCIPAL] },
  dynamodb: { OldImage: { type: { S: ["lease"] } } },
} as const;

export function isTtlLeaseExpiry(record: TtlStreamRecord): boolean {
  const type = (record.dynamodb?.OldImage?.type as { S?: string } | undefined)?.S;
  return (
    record.eventName === "REMOVE" &&
    record.userIdentity?.type === "Service" &&
    record.userIdentity.principalId === TTL_PRINCIPAL &&
    type === "lease"
  );
}

/**
 * Handles expired leases: a task lease makes sure the task is ended, revoked, its secrets
 * rotated and closed; a prune lease removes a revocation entry whose credentials have all
 * expired. Records are handled one by one, in order; the first failure and everything after
 * it are reported as `batchItemFailures`, so Lambda retries exactly those.
 */
export async function handleTtlRecords(
  records: readonly TtlStreamRecord[],
  lifecycle: TaskLifecycle,
): Promise<{ batchItemFailures: { itemIdentifier: string }[] }> {
  for (const [i, record] of records.entries()) {
    try {
      if (!isTtlLeaseExpiry(record)) continue;
      const lease = unmarshall((record.dynamodb?.OldImage ?? {}) as Record<string, AttributeValue>);
      if (lease.leaseKind === "task" && typeof lease.taskId === "string") {
        await lifecycle.backstop({ taskId: lease.taskId });
      } else if (
        lease.leaseKind === "prune" &&
        typeof lease.taskId === "string" &&
        typeof lease.roleArn === "string"
      ) {
        await lifecycle.prune({ roleArn: lease.roleArn, taskId: lease.taskId });
      }
    } catch {
      return {
        batchItemFailures: records
          .slice(i)
          .map((r) => ({ itemIdentifier: r.dynamodb?.SequenceNumber ?? "" }))
          .filter((f) => f.itemIdentifier !== ""),
      };
    }
  }
  return { batchItemFailures: [] };
}

/** How late a task must be before the sweeper steps in (the state machine and TTL go first). */
export const SWEEP_DEFAULTS = {
  /** A live task this long past its deadline was missed by both the state machine and the TTL stream. */
  overdueAfterSeconds: 120,
  /**
   * An ended task this long without being closed has a lifecycle that died, gave up, or was never
   * told the task ended (a lost signal): a closed lifecycle takes seconds, its retries minutes.
   */
  unclosedAfterSeconds: 300,
} as const;

/**
 * The scheduled sweep behind the TTL backstop: every task the lifecycle should have finished
 * with by now (see {@link OverdueTasks}) goes through the backstop (ended, revoked, secrets
 * rotated, closed). It covers what the stream could not: a batch in the TTL DLQ, a lease TTL
 * that DynamoDB has not deleted yet, a lifecycle that died. One task failing does not stop the
 * others; the failed ones are returned (and found again by the next sweep).
 */
export async function sweepOverdueTasks(props: {
  readonly overdue: OverdueTasks;
  readonly lifecycle: Pick<TaskLifecycle, "backstop">;
  readonly now?: Date;
}): Promise<{ swept: string[]; failed: string[] }> {
  const tasks = await props.overdue.list({ now: props.now ?? new Date(), ...SWEEP_DEFAULTS });
  const swept: string[] = [];
  const failed: string[] = [];
  for (const task of tasks) {
    try {
      await props.lifecycle.backstop({ taskId: task.taskId });
      swept.push(task.taskId);
    } catch {
      failed.push(task.taskId);
    }
  }
  return { swept, failed };
}
