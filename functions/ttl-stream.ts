import middy from "@middy/core";
import type { DynamoDBStreamEvent } from "aws-lambda";
import { awsLifecycle } from "../lib/app/aws-wiring.js";
import { handleTtlRecords } from "../lib/app/ttl-backstop.js";

const lifecycle = awsLifecycle("jitv-ttl-stream");

/**
 * The TTL backstop: the table's stream, filtered by the event source mapping to `REMOVE`
 * records of leases deleted by the TTL service. Reports partial batch failures.
 */
export const handler = middy(async (event: DynamoDBStreamEvent) =>
  handleTtlRecords(event.Records, lifecycle),
);
