import { randomUUID } from "node:crypto";
import {
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { DeleteCommand, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import { newTaskId } from "../../../lib/domain/ids.js";
import {
  DynamoRevocationStore,
  type DynamoRevocationStoreOptions,
} from "../../../lib/revocation/dynamo-revocation-store.js";
import { DynamoRolePolicyWriter } from "../../../lib/revocation/dynamo-role-policy-writer.js";
import { IamRolePolicyWriter } from "../../../lib/revocation/iam-role-policy-writer.js";
import { nonWhitespaceLength, renderRevocationPolicy } from "../../../lib/revocation/policy.js";
import { REVOCATION_POLICY_NAME, type RolePolicyWriter } from "../../../lib/revocation/revocation-store.js";
import {
  pruneLeaseKey,
  revocationKey,
  roleLockItem,
  roleLockKey,
  roleMetaKey,
} from "../../../lib/store/table.js";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";
import { seeded } from "../../support/random.js";

const iam = mockClient(IAMClient);

const MINUTE = 60_000;

interface PolicyStatement {
  Sid: string;
  Condition: Record<string, Record<string, unknown>>;
}

describe("DynamoRevocationStore", () => {
  let table: TestTable;
  let sandbox: DynamoRolePolicyWriter;
  /** Real time at the start: credential expiries lie after it, so DynamoDB Local's TTL leaves the leases alone. */
  let t0: number;
  let now: Date;

  beforeAll(async () => {
    table = await createTestTable();
    sandbox = new DynamoRolePolicyWriter({ client: table.doc, tableName: table.tableName });
    t0 = Math.floor(Date.now() / 1000) * 1000;
  });

  beforeEach(() => {
    iam.reset();
    now = new Date(t0);
  });

  function newRole(): string {
    return `arn:aws:iam::123456789012:role/jitv/test/role-${randomUUID()}`;
  }

  function at(offsetMs: number): string {
    return new Date(t0 + offsetMs).toISOString();
  }

  function store(options: Partial<DynamoRevocationStoreOptions> = {}): DynamoRevocationStore {
    return new DynamoRevocationStore({
      client: table.doc,
      tableName: table.tableName,
      writer: sandbox,
      now: () => now,
      ...options,
    });
  }

  async function statements(roleArn: string): Promise<PolicyStatement[] | undefined> {
    const document = await sandbox.get(roleArn, REVOCATION_POLICY_NAME);
    return document === undefined ? undefined : (JSON.parse(document).Statement as PolicyStatement[]);
  }

  async function deniedTasks(roleArn: string): Promise<string[]> {
    const tasks = (await statements(roleArn))?.find((s) => s.Sid === "JitvRevokedTasks");
    return (tasks?.Condition.StringEquals?.["aws:PrincipalTag/jitv:task"] as string[] | undefined) ?? [];
  }

  async function cutoffStatement(roleArn: string): Promise<unknown> {
    const before = (await statements(roleArn))?.find((s) => s.Sid === "JitvRevokedBefore");
    return before?.Condition.DateLessThan?.["aws:TokenIssueTime"];
  }

  async function item(key: { pk: string; sk: string }) {
    return (
      await table.doc.send(new GetCommand({ TableName: table.tableName, Key: key, ConsistentRead: true }))
    ).Item;
  }

  /** A writer that holds every call for a random few milliseconds and records overlapping puts. */
  function slowWriter(inner: RolePolicyWriter) {
    const stats = { puts: 0, inFlight: 0, maxInFlight: 0 };
    const jitter = seeded(7);
    const pause = () => new Promise((resolve) => setTimeout(resolve, jitter() * 30));
    const writer: RolePolicyWriter = {
      get: (roleArn, name) => inner.get(roleArn, name),
      freeInlineChars: (roleArn, name) => inner.freeInlineChars(roleArn, name),
      overflowPolicies: (roleArn) => inner.overflowPolicies(roleArn),
      getOverflow: (roleArn, id) => inner.getOverflow(roleArn, id),
      putOverflow: (roleArn, id, document) => inner.putOverflow(roleArn, id, document),
      async put(roleArn, name, document) {
        stats.puts++;
        stats.inFlight++;
        stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
        try {
          await pause();
          await inner.put(roleArn, name, document);
          await pause();
        } finally {
          stats.inFlight--;
        }
      },
      async delete(roleArn, name) {
        await pause();
        await inner.delete(roleArn, name);
      },
    };
    return { writer, stats };
  }

  it("records the entry and projects a deny on the task's sessions onto the role", async () => {
    const role = newRole();
    const taskId = newTaskId();

    await store().revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });

    expect(await deniedTasks(role)).toEqual([taskId]);
    expect(await sandbox.get(role, REVOCATION_POLICY_NAME)).toBe(
      renderRevocationPolicy({ taskIds: [taskId] }),
    );
    expect(await store().revokedTaskIds(role)).toEqual([taskId]);
    expect(await item(revocationKey(role, taskId))).toStrictEqual({
      ...revocationKey(role, taskId),
      type: "revocation",
      roleArn: role,
      taskId,
      revokedAt: now.toISOString(),
      credentialsExpireAt: at(30 * MINUTE),
      // Listed in the inline policy (slot 0), where it stays until pruned.
      slot: 0,
    });
    expect(await item(roleLockKey(role))).toBeUndefined();
  });

  it("arms a prune lease at credentialsExpireAt + 300 s, indexed on itself", async () => {
    const role = newRole();
    const taskId = newTaskId();
    const expiry = t0 + 30 * MINUTE + 500;

    await store().revoke({ roleArn: role, taskId, credentialsExpireAt: new Date(expiry).toISOString() });

    const key = pruneLeaseKey(role, taskId);
    expect(await item(key)).toStrictEqual({
      ...key,
      gsi1pk: key.pk,
      gsi1sk: key.sk,
      gsi2pk: key.pk,
      gsi2sk: key.sk,
      gsi3pk: key.pk,
      gsi3sk: key.sk,
      type: "lease",
      leaseKind: "prune",
      roleArn: role,
      taskId,
      ttlEpoch: Math.ceil(expiry / 1000) + 300,
    });
  });

  it("is idempotent: a second revoke keeps the first revokedAt and never moves the expiry earlier", async () => {
    const role = newRole();
    const taskId = newTaskId();
    const s = store();
    await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });
    const firstRevokedAt = now.toISOString();

    now = new Date(t0 + 5 * MINUTE);
    await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });
    await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(20 * MINUTE) });

    expect(await s.revokedTaskIds(role)).toEqual([taskId]);
    expect(await deniedTasks(role)).toEqual([taskId]);
    expect(await item(revocationKey(role, taskId))).toMatchObject({
      revokedAt: firstRevokedAt,
      credentialsExpireAt: at(30 * MINUTE),
    });
    expect(await item(pruneLeaseKey(role, taskId))).toMatchObject({
      ttlEpoch: (t0 + 30 * MINUTE) / 1000 + 300,
    });

    // A later expiry (a credential issued after the first revoke) moves both forward.
    await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(45 * MINUTE) });
    expect(await item(revocationKey(role, taskId))).toMatchObject({
      revokedAt: firstRevokedAt,
      credentialsExpireAt: at(45 * MINUTE),
    });
    expect(await item(pruneLeaseKey(role, taskId))).toMatchObject({
      ttlEpoch: (t0 + 45 * MINUTE) / 1000 + 300,
    });
  });

  it("prunes an entry out of the policy and deletes the policy once nothing is left", async () => {
    const role = newRole();
    const [a, b] = [newTaskId(), newTaskId()];
    const s = store();
    await s.revoke({ roleArn: role, taskId: a, credentialsExpireAt: at(30 * MINUTE) });
    await s.revoke({ roleArn: role, taskId: b, credentialsExpireAt: at(60 * MINUTE) });
    expect(await deniedTasks(role)).toEqual([a, b].sort());

    now = new Date(t0 + 35 * MINUTE);
    await s.prune(role, a);

    expect(await item(revocationKey(role, a))).toBeUndefined();
    expect(await s.revokedTaskIds(role)).toEqual([b]);
    expect(await deniedTasks(role)).toEqual([b]);

    now = new Date(t0 + 65 * MINUTE);
    await s.prune(role, b);
    await s.prune(role, b);

    expect(await s.revokedTaskIds(role)).toEqual([]);
    expect(await sandbox.get(role, REVOCATION_POLICY_NAME)).toBeUndefined();
  });

  it("keeps an entry whose credentials are still live and re-arms its prune lease", async () => {
    const role = newRole();
    const taskId = newTaskId();
    const s = store();
    await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });
    // The lease fired early and is gone (clock skew, a manual call).
    await table.doc.send(new DeleteCommand({ TableName: table.tableName, Key: pruneLeaseKey(role, taskId) }));

    now = new Date(t0 + 10 * MINUTE);
    await s.prune(role, taskId);

    expect(await s.revokedTaskIds(role)).toEqual([taskId]);
    expect(await deniedTasks(role)).toEqual([taskId]);
    expect(await item(pruneLeaseKey(role, taskId))).toMatchObject({
      leaseKind: "prune",
      ttlEpoch: (t0 + 30 * MINUTE) / 1000 + 300,
    });
  });

  it("stops listing a task 5 minutes after its credentials expired, even before its lease prunes it", async () => {
    const role = newRole();
    const [a, b] = [newTaskId(), newTaskId()];
    const s = store();
    await s.revoke({ roleArn: role, taskId: a, credentialsExpireAt: at(30 * MINUTE) });

    now = new Date(t0 + 35 * MINUTE - 1);
    await s.revoke({ roleArn: role, taskId: b, credentialsExpireAt: at(60 * MINUTE) });
    expect(await deniedTasks(role)).toEqual([a, b].sort());

    now = new Date(t0 + 35 * MINUTE);
    await s.project(role);
    expect(await deniedTasks(role)).toEqual([b]);
    expect(await s.revokedTaskIds(role)).toEqual([a, b].sort());
  });

  it("loses no entry when 20 tasks of one role are revoked at once", async () => {
    const role = newRole();
    const taskIds = Array.from({ length: 20 }, () => newTaskId());
    const { writer, stats } = slowWriter(sandbox);
    const s = store({ writer, now: () => new Date() });
    const stagger = seeded(11);

    // Staggered starts, so some projections read the entries before others have written theirs.
    await Promise.all(
      taskIds.map(async (taskId) => {
        await new Promise((resolve) => setTimeout(resolve, stagger() * 40));
        await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });
      }),
    );

    expect(await deniedTasks(role)).toEqual([...taskIds].sort());
    expect(await s.revokedTaskIds(role)).toEqual([...taskIds].sort());
    // Changes that queued behind the lock are covered by one later projection.
    expect(stats.puts).toBeGreaterThanOrEqual(1);
    expect(stats.puts).toBeLessThanOrEqual(20);
    // Projections of one role never overlap: IAM would keep whichever put landed last.
    expect(stats.maxInFlight).toBe(1);
    expect(await item(roleLockKey(role))).toBeUndefined();
  });

  it("takes over the lock of a crashed holder once it has expired", async () => {
    const role = newRole();
    const taskId = newTaskId();
    await table.doc.send(
      new PutCommand({ TableName: table.tableName, Item: roleLockItem(role, "crashed", now.getTime() - 1) }),
    );

    await store().revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });

    expect(await deniedTasks(role)).toEqual([taskId]);
    expect(await item(roleLockKey(role))).toBeUndefined();
  });

  it("waits a bounded time for a live lock, then fails with upstream_unavailable keeping the entry", async () => {
    const role = newRole();
    const taskId = newTaskId();
    await table.doc.send(
      new PutCommand({
        TableName: table.tableName,
        Item: roleLockItem(role, "busy", now.getTime() + 30_000),
      }),
    );
    const sleeps: number[] = [];
    const s = store({ sleep: async (ms) => void sleeps.push(ms) });

    const revoke = s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });

    await expect(revoke).rejects.toBeInstanceOf(UpstreamUnavailableError);
    await expect(revoke).rejects.toThrow("revocation policy of the role is busy, try again");
    const waited = sleeps.reduce((sum, ms) => sum + ms, 0);
    expect(waited).toBeGreaterThanOrEqual(20_000);
    expect(waited).toBeLessThan(21_000);
    expect(await sandbox.get(role, REVOCATION_POLICY_NAME)).toBeUndefined();
    // The entry is the source of truth: the next projection (a retry) denies the task.
    expect(await s.revokedTaskIds(role)).toEqual([taskId]);
    now = new Date(t0 + 31_000);
    await s.project(role);
    expect(await deniedTasks(role)).toEqual([taskId]);
  });

  it("projects again when its lock was taken over while it wrote", async () => {
    const role = newRole();
    const [a, b] = [newTaskId(), newTaskId()];
    const documents: string[] = [];
    let stolen = false;
    const writer: RolePolicyWriter = {
      get: (roleArn, name) => sandbox.get(roleArn, name),
      delete: (roleArn, name) => sandbox.delete(roleArn, name),
      freeInlineChars: (roleArn, name) => sandbox.freeInlineChars(roleArn, name),
      overflowPolicies: (roleArn) => sandbox.overflowPolicies(roleArn),
      getOverflow: (roleArn, id) => sandbox.getOverflow(roleArn, id),
      putOverflow: (roleArn, id, document) => sandbox.putOverflow(roleArn, id, document),
      async put(roleArn, name, document) {
        documents.push(document);
        if (!stolen) {
          stolen = true;
          // Another writer took the lock over (this projection outlived lockTtlMs) and revoked b.
          await table.doc.send(
            new PutCommand({
              TableName: table.tableName,
              Item: roleLockItem(role, "other", now.getTime() - 1),
            }),
          );
          await store().revoke({ roleArn: role, taskId: b, credentialsExpireAt: at(30 * MINUTE) });
          await table.doc.send(
            new PutCommand({
              TableName: table.tableName,
              Item: roleLockItem(role, "other", now.getTime() - 1),
            }),
          );
        }
        await sandbox.put(roleArn, name, document);
      },
    };

    await store({ writer }).revoke({ roleArn: role, taskId: a, credentialsExpireAt: at(30 * MINUTE) });

    // The stale first document (only a) landed after b's projection; the re-run fixed it.
    expect(documents).toEqual([
      renderRevocationPolicy({ taskIds: [a] }),
      renderRevocationPolicy({ taskIds: [a, b] }),
    ]);
    expect(await deniedTasks(role)).toEqual([a, b].sort());
  });

  describe("size fallback", () => {
    it("denies sessions issued before a cutoff once the list outgrows the budget, and drops it after 65 minutes", async () => {
      const role = newRole();
      const early = Array.from({ length: 7 }, () => newTaskId());
      const [later, last] = [newTaskId(), newTaskId()];
      const fallbacks: [string, string][] = [];
      // Room for the cutoff statement and two ids, not for seven ids.
      const budgetChars = nonWhitespaceLength(
        renderRevocationPolicy({ taskIds: [later, last], issuedBefore: "2025-06-01T12:00:00Z" }) ?? "",
      );
      const s = store({ budgetChars, onFallback: (roleArn, cutoff) => fallbacks.push([roleArn, cutoff]) });

      for (const taskId of early.slice(0, 6)) {
        await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });
      }
      expect(await deniedTasks(role)).toEqual(early.slice(0, 6).sort());
      expect(await cutoffStatement(role)).toBeUndefined();
      expect(fallbacks).toEqual([]);

      now = new Date(t0 + 10 * MINUTE + 400);
      await s.revoke({ roleArn: role, taskId: early[6] ?? "", credentialsExpireAt: at(30 * MINUTE) });

      // Rounded up to the second: every task revoked so far is covered by the cutoff.
      const cutoff = new Date(t0 + 10 * MINUTE + 1000).toISOString().replace(".000Z", "Z");
      expect(fallbacks).toEqual([[role, cutoff]]);
      expect(await cutoffStatement(role)).toBe(cutoff);
      expect(await deniedTasks(role)).toEqual([]);
      expect(await item(roleMetaKey(role))).toStrictEqual({
        ...roleMetaKey(role),
        type: "role",
        roleArn: role,
        cutoff,
        requested: 7,
        projected: 7,
      });
      // The entries stay the source of truth.
      expect(await s.revokedTaskIds(role)).toEqual([...early].sort());

      // Tasks revoked after the cutoff are listed beside it; the cutoff is not moved again.
      now = new Date(t0 + 20 * MINUTE);
      await s.revoke({ roleArn: role, taskId: later, credentialsExpireAt: at(40 * MINUTE) });
      await s.revoke({ roleArn: role, taskId: last, credentialsExpireAt: at(78 * MINUTE) });
      expect(await cutoffStatement(role)).toBe(cutoff);
      expect(await deniedTasks(role)).toEqual([later, last].sort());
      expect(fallbacks).toHaveLength(1);

      // 64 minutes after the cutoff, a session issued just before it may still be alive.
      now = new Date(Date.parse(cutoff) + 64 * MINUTE);
      await s.project(role);
      expect(await cutoffStatement(role)).toBe(cutoff);

      // 65 minutes after: none can be. The cutoff goes; expired tasks are not listed again.
      now = new Date(Date.parse(cutoff) + 65 * MINUTE);
      await s.project(role);
      expect(await cutoffStatement(role)).toBeUndefined();
      expect(await deniedTasks(role)).toEqual([last]);
      expect(await item(roleMetaKey(role))).toStrictEqual({
        ...roleMetaKey(role),
        type: "role",
        roleArn: role,
        requested: 9,
        projected: 9,
      });
      expect(fallbacks).toHaveLength(1);
    });

    it("does not let a failing onFallback stop the revocation", async () => {
      const role = newRole();
      const taskId = newTaskId();
      const s = store({
        budgetChars: 10,
        onFallback: () => {
          throw new Error("metrics down");
        },
      });

      await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });

      expect(await cutoffStatement(role)).toBeDefined();
    });
  });

  describe("with the IAM writer", () => {
    function iamStore(options: Partial<DynamoRevocationStoreOptions> = {}) {
      // The role's only inline policy is jitv's own: its whole quota is free.
      iam.on(ListRolePoliciesCommand).resolves({ PolicyNames: ["jitv-revoked-tasks"], IsTruncated: false });
      iam.on(ListAttachedRolePoliciesCommand).resolves({ AttachedPolicies: [], IsTruncated: false });
      return store({
        writer: new IamRolePolicyWriter({
          client: new IAMClient({ region: "us-east-1", maxAttempts: 1 }),
          sleep: async () => undefined,
        }),
        ...options,
      });
    }

    it("sends IAM exactly the projected policy on every change, and deletes it when empty", async () => {
      iam.on(PutRolePolicyCommand).resolves({}).on(DeleteRolePolicyCommand).resolves({});
      const role = newRole();
      const roleName = role.split("/").at(-1);
      const [a, b] = [newTaskId(), newTaskId()];
      const s = iamStore();

      await s.revoke({ roleArn: role, taskId: a, credentialsExpireAt: at(30 * MINUTE) });
      await s.revoke({ roleArn: role, taskId: b, credentialsExpireAt: at(60 * MINUTE) });

      const puts = iam.commandCalls(PutRolePolicyCommand).map((call) => call.args[0].input);
      expect(puts).toStrictEqual([
        {
          RoleName: roleName,
          PolicyName: "jitv-revoked-tasks",
          PolicyDocument: renderRevocationPolicy({ taskIds: [a] }),
        },
        {
          RoleName: roleName,
          PolicyName: "jitv-revoked-tasks",
          PolicyDocument: renderRevocationPolicy({ taskIds: [a, b] }),
        },
      ]);

      now = new Date(t0 + 35 * MINUTE);
      await s.prune(role, a);
      expect(iam).toHaveReceivedNthCommandWith(PutRolePolicyCommand, 3, {
        PolicyDocument: renderRevocationPolicy({ taskIds: [b] }),
      });
      now = new Date(t0 + 65 * MINUTE);
      await s.prune(role, b);
      expect(iam).toHaveReceivedCommandExactlyOnceWith(DeleteRolePolicyCommand, {
        RoleName: roleName,
        PolicyName: "jitv-revoked-tasks",
      });
    });

    it("sends IAM the cutoff statement in the fallback", async () => {
      iam.on(PutRolePolicyCommand).resolves({});
      const role = newRole();
      const s = iamStore({ budgetChars: 10 });
      now = new Date(t0 + 250);

      await s.revoke({ roleArn: role, taskId: newTaskId(), credentialsExpireAt: at(30 * MINUTE) });

      const cutoff = new Date(t0 + 1000).toISOString().replace(".000Z", "Z");
      expect(iam).toHaveReceivedCommandExactlyOnceWith(PutRolePolicyCommand, {
        PolicyDocument: renderRevocationPolicy({ taskIds: [], issuedBefore: cutoff }),
      });
    });

    it("surfaces an IAM failure and keeps the entry so a retry projects it", async () => {
      iam.on(PutRolePolicyCommand).rejectsOnce(Object.assign(new Error("denied"), { name: "AccessDenied" }));
      const role = newRole();
      const taskId = newTaskId();
      const s = iamStore();

      await expect(
        s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) }),
      ).rejects.toBeInstanceOf(UpstreamUnavailableError);
      expect(await item(roleLockKey(role))).toBeUndefined();

      iam.on(PutRolePolicyCommand).resolves({});
      await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });
      expect(iam).toHaveReceivedNthCommandWith(PutRolePolicyCommand, 2, {
        PolicyDocument: renderRevocationPolicy({ taskIds: [taskId] }),
      });
    });
  });

  describe("at IAM's real limits", () => {
    it("falls back instead of failing when the role's own policies leave little room (5,000 characters)", async () => {
      const role = newRole();
      const fallbacks: string[] = [];
      // The sandbox enforces IAM's 10,240-character quota across the role's inline policies.
      const crowded = new DynamoRolePolicyWriter({
        client: table.doc,
        tableName: table.tableName,
        ownInlineChars: (arn) => (arn === role ? 5000 : 0),
      });
      const s = store({
        writer: crowded,
        budgetChars: 10_240,
        onFallback: (_, cutoff) => fallbacks.push(cutoff),
      });
      const taskIds = Array.from({ length: 200 }, () => newTaskId());
      for (const [n, taskId] of taskIds.entries()) {
        now = new Date(t0 + n * 1000);
        await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });
      }
      expect(fallbacks.length).toBeGreaterThanOrEqual(1);
      // Every ended task is denied: listed, or revoked before the cutoff (so its sessions were issued before it).
      const cutoff = Date.parse(String(await cutoffStatement(role)));
      const listed = new Set(await deniedTasks(role));
      for (const [n, taskId] of taskIds.entries()) {
        expect(listed.has(taskId) || t0 + n * 1000 < cutoff, taskId).toBe(true);
      }
      expect(
        nonWhitespaceLength((await crowded.get(role, REVOCATION_POLICY_NAME)) ?? ""),
      ).toBeLessThanOrEqual(5240);
    });

    it("falls back when IAM answers LimitExceeded although the measured budget said it fits", async () => {
      const role = newRole();
      const fallbacks: string[] = [];
      const ownPolicy = JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*" }],
      });
      iam
        .on(ListAttachedRolePoliciesCommand)
        .resolves({ AttachedPolicies: [], IsTruncated: false })
        .on(ListRolePoliciesCommand)
        .resolves({ PolicyNames: ["own", "jitv-revoked-tasks"], IsTruncated: false })
        .on(GetRolePolicyCommand, { PolicyName: "own" })
        .resolves({ PolicyDocument: encodeURIComponent(ownPolicy) })
        .on(PutRolePolicyCommand)
        .callsFake((input: { PolicyDocument: string }) => {
          // IAM refuses the list (the role's quota is fuller than measured), takes the cutoff.
          if (input.PolicyDocument.includes("JitvRevokedBefore")) return {};
          throw Object.assign(new Error("Maximum policy size of 10240 bytes exceeded"), {
            name: "LimitExceededException",
          });
        });
      const s = store({
        writer: new IamRolePolicyWriter({
          client: new IAMClient({ region: "us-east-1", maxAttempts: 1 }),
          sleep: async () => undefined,
        }),
        onFallback: (_, cutoff) => fallbacks.push(cutoff),
      });
      const taskId = newTaskId();
      await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });
      expect(fallbacks).toHaveLength(1);
      const puts = iam.commandCalls(PutRolePolicyCommand).map((call) => call.args[0].input.PolicyDocument);
      expect(puts).toEqual([
        renderRevocationPolicy({ taskIds: [taskId] }),
        renderRevocationPolicy({ taskIds: [taskId], issuedBefore: fallbacks[0] as string }),
      ]);
    });

    it("counts a deleted role as revoked (NoSuchEntity), reports it, and does not fail forever", async () => {
      const role = newRole();
      const missing: string[] = [];
      const noSuchEntity = Object.assign(new Error("The role cannot be found."), {
        name: "NoSuchEntityException",
      });
      iam
        .on(ListAttachedRolePoliciesCommand)
        .rejects(noSuchEntity)
        .on(ListRolePoliciesCommand)
        .rejects(noSuchEntity)
        .on(PutRolePolicyCommand)
        .rejects(noSuchEntity);
      const s = store({
        writer: new IamRolePolicyWriter({
          client: new IAMClient({ region: "us-east-1", maxAttempts: 1 }),
          sleep: async () => undefined,
        }),
        onRoleMissing: (arn) => missing.push(arn),
      });
      const taskId = newTaskId();
      await s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) });
      expect(missing).toEqual([role]);
      expect(await s.revokedTaskIds(role)).toEqual([taskId]);
      expect(await item(roleLockKey(role))).toBeUndefined();
    });

    it("finishes a burst of 150 concurrent revocations on one role, none refused as busy, with far fewer projections", async () => {
      const role = newRole();
      const taskIds = Array.from({ length: 150 }, () => newTaskId());
      let puts = 0;
      const counting: RolePolicyWriter = {
        get: (arn, name) => sandbox.get(arn, name),
        delete: (arn, name) => sandbox.delete(arn, name),
        freeInlineChars: (arn, name) => sandbox.freeInlineChars(arn, name),
        overflowPolicies: (arn) => sandbox.overflowPolicies(arn),
        getOverflow: (arn, id) => sandbox.getOverflow(arn, id),
        putOverflow: (arn, id, document) => sandbox.putOverflow(arn, id, document),
        put: async (arn, name, document) => {
          puts++;
          await sandbox.put(arn, name, document);
        },
      };
      // Real backoff: the waiters' budget is real time, as in a Lambda.
      const s = store({ writer: counting, budgetChars: 10_240, now: () => new Date() });
      const results = await Promise.allSettled(
        taskIds.map((taskId) => s.revoke({ roleArn: role, taskId, credentialsExpireAt: at(30 * MINUTE) })),
      );
      expect(results.filter((r) => r.status === "rejected")).toEqual([]);
      expect(await s.revokedTaskIds(role)).toEqual([...taskIds].sort());
      // Listed, or (past the budget) behind a cutoff taken after every entry was written.
      const listed = await deniedTasks(role);
      expect(listed.length === 150 || (await cutoffStatement(role)) !== undefined).toBe(true);
      expect(puts).toBeLessThan(150);
    });
  });

  it("turns DynamoDB failures into upstream_unavailable without echoing the role", async () => {
    const role = newRole();
    const s = new DynamoRevocationStore({
      client: table.doc,
      tableName: `missing-${randomUUID()}`,
      writer: sandbox,
    });

    const revoke = s.revoke({ roleArn: role, taskId: newTaskId(), credentialsExpireAt: at(30 * MINUTE) });

    await expect(revoke).rejects.toBeInstanceOf(UpstreamUnavailableError);
    await expect(revoke).rejects.toThrow("revocation store unavailable");
    await expect(s.revokedTaskIds(role)).rejects.toThrow("revocation store unavailable");
  });
});
