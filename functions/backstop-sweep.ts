import middy from "@middy/core";
import { awsRolePolicyWriter, awsSecretRotator } from "../lib/app/aws-adapters.js";
import { awsLifecycle, documentClient } from "../lib/app/aws-wiring.js";
import { sweepOverdueTasks } from "../lib/app/ttl-backstop.js";
import { ENV, requireEnv } from "../lib/config.js";
import { DynamoOverdueTasks } from "../lib/tasks/dynamo-overdue-tasks.js";

const lifecycle = awsLifecycle("jitv-backstop-sweep", {
  writer: awsRolePolicyWriter(),
  rotator: awsSecretRotator(),
});
const overdue = new DynamoOverdueTasks({ client: documentClient(), tableName: requireEnv(ENV.tableName) });

/**
 * The backstop sweeper, run on a schedule: ends, revokes, rotates and closes every task the
 * state machine and the TTL stream missed (e.g. what the TTL DLQ holds). Fails the invocation
 * when a task could not be finished, so the function's Errors alarm says so; the next run
 * tries again.
 */
export const handler = middy(async () => {
  const { swept, failed } = await sweepOverdueTasks({ overdue, lifecycle });
  if (failed.length > 0) {
    throw new Error(
      `backstop sweep: ${failed.length} of ${swept.length + failed.length} overdue tasks failed: ${failed.slice(0, 10).join(", ")}`,
    );
  }
  return { swept: swept.length };
});
