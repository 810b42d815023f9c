import middy from "@middy/core";
import type { DynamoDBStreamEvent } from "aws-lambda";
import { awsRolePolicyWriter, awsSecretRotator } from "../lib/app/aws-adapters.js";
import { awsLifecycle } from "../lib/app/aws-wiring.js";
import { handleTtlRecords } from "../lib/app/ttl-backstop.js";

// The backstop revokes and rotates; it answers no task token.
const lifecycle = awsLifecycle("jitv-ttl-stream", {
  writer: awsRolePolicyWriter(),
  rotator: awsSecretRotator(),
});

/**
 * The TTL backstop: the table's stream, filtered by the event source mapping to `REMOVE`
 * records of leases deleted by the TTL service. Reports partial batch failures.
 */
export const handler = middy(async (event: DynamoDBStreamEvent) =>
  handleTtlRecords(event.Records, lifecycle),
);
