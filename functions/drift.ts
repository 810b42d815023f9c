import middy from "@middy/core";
import type { EventBridgeEvent } from "aws-lambda";
import { awsDriftDetector } from "../lib/app/aws-drift.js";

// Built once per cold start; a missing table name fails here, naming it.
const detector = awsDriftDetector("jitv-drift");

/**
 * Drift detection (CONTRACT.md section 9): one CloudTrail record of a jitv session per
 * EventBridge event, delivered by the rule `infra/constructs/drift-detector.ts` creates. A
 * failure throws, so EventBridge's asynchronous invocation retries it (idempotent per `eventID`).
 */
export const handler = middy(async (event: EventBridgeEvent<string, unknown>) =>
  detector.handle([event.detail]),
);
