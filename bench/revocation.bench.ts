// npm run bench (second part): revocation capacity of one role on DynamoDB Local, with the
// sandbox's IAM emulation (IAM's quotas enforced) and a JitTargetRole's 8 overflow policies.
// Prints how many ended tasks one role holds before the dated cutoff, and checks with the
// `simulate` policy engine that 1,500 ended tasks are denied and 100 live ones are not.
// Asserts nothing: the figures are for the README.
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { newTaskId } from "../lib/domain/ids.js";
import { DynamoRevocationStore } from "../lib/revocation/dynamo-revocation-store.js";
import { DynamoRolePolicyWriter } from "../lib/revocation/dynamo-role-policy-writer.js";
import { DEFAULT_OVERFLOW_POLICIES } from "../lib/revocation/policy.js";
import { startDynamoDbLocal } from "../lib/sandbox/dynamodb-local.js";
import { revocationDocument, sessionDecision } from "../lib/sandbox/routes.js";
import { ensureTable } from "../lib/store/table.js";

const ddb = await startDynamoDbLocal();
const client = new DynamoDBClient({
  endpoint: ddb.endpoint,
  region: "us-east-1",
  credentials: { accessKeyId: "local", secretAccessKey: "local" },
});
const doc = DynamoDBDocumentClient.from(client);
const tableName = "jitv-bench";
await ensureTable(client, tableName);
const writer = new DynamoRolePolicyWriter({
  client: doc,
  tableName,
  overflowSlots: () => DEFAULT_OVERFLOW_POLICIES,
});
const now = new Date();
const credentialsExpireAt = new Date(now.getTime() + 15 * 60_000).toISOString();

/** Revokes `count` tasks on a fresh role in bursts of 100; returns the ids, revocations before the first fallback, and time. */
async function endTasks(role: string, count: number) {
  let revoked = 0;
  let firstFallbackAt: number | undefined;
  const store = new DynamoRevocationStore({
    client: doc,
    tableName,
    writer,
    now: () => now,
    onFallback: () => {
      firstFallbackAt ??= revoked;
    },
  });
  const ids = Array.from({ length: count }, () => newTaskId());
  const t0 = performance.now();
  for (let i = 0; i < ids.length; i += 100) {
    await Promise.all(
      ids.slice(i, i + 100).map(async (taskId) => {
        await store.revoke({ roleArn: role, taskId, credentialsExpireAt });
        revoked++;
      }),
    );
    if (firstFallbackAt !== undefined) break;
  }
  return { ids, firstFallbackAt, ms: performance.now() - t0 };
}

// With --json: one JSON object on stdout (the bench protocol), no lines.
const asJson = process.argv.includes("--json");
const say = asJson ? () => undefined : (line: string) => console.log(line);

try {
  const capacity = await endTasks("arn:aws:iam::123456789012:role/jitv/bench-capacity", 3000);
  say(
    `revocation capacity          ended tasks listed on one role before the dated cutoff: ${
      capacity.firstFallbackAt === undefined
        ? "more than 3000"
        : `${capacity.firstFallbackAt} (±100, bursts of 100)`
    }`,
  );

  const role = "arn:aws:iam::123456789012:role/jitv/bench-1500";
  const ended = await endTasks(role, 1500);
  const live = Array.from({ length: 100 }, () => newTaskId());
  const revocationPolicy = await revocationDocument(writer, role);
  const issuedAt = new Date(now.getTime() - 60_000);
  const decide = (taskId: string) =>
    sessionDecision({ roleArn: role, taskId, revocationPolicy, issuedAt, now });
  const endedDenied = (await Promise.all(ended.ids.map(decide))).filter(
    (d) => d === "ExplicitlyDenied",
  ).length;
  const liveAllowed = (await Promise.all(live.map(decide))).filter((d) => d === "Allowed").length;
  say(
    `revocation, 1500 ended/role  cutoff used: ${ended.firstFallbackAt === undefined ? "no" : "yes"}  ended denied: ${endedDenied}/1500  live allowed: ${liveAllowed}/100  ${(ended.ms / 1500).toFixed(1)} ms per revocation (bursts of 100)`,
  );
  if (asJson) {
    console.log(
      JSON.stringify({
        endedTasksBeforeCutoff: capacity.firstFallbackAt ?? null,
        ended1500: {
          cutoffUsed: ended.firstFallbackAt !== undefined,
          endedDenied,
          liveAllowed,
          msPerRevocation: Math.round((ended.ms / 1500) * 10) / 10,
        },
      }),
    );
  }
} finally {
  client.destroy();
  await ddb.stop();
}
