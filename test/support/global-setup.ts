import type { TestProject } from "vitest/node";
import { startDynamoDbLocal } from "../../lib/sandbox/dynamodb-local.js";
import { buildCli, removeCliBuild } from "../../scripts/build-cli.mjs";

declare module "vitest" {
  export interface ProvidedContext {
    /** Endpoint of the one DynamoDB Local shared by the whole test run. */
    dynamodbEndpoint: string;
  }
}

/**
 * Starts one in-memory DynamoDB Local for the whole run. Tests reach it through
 * `inject("dynamodbEndpoint")` (or `JITV_TEST_DYNAMODB_ENDPOINT`) and isolate themselves by
 * creating their own uniquely named table (`test/support/dynamodb.ts`).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Tests run `bin/jitv.mjs` as users do: from a build, made here from the current sources. A
  // source that does not build leaves no build behind, so the CLI runs the sources through tsx.
  await buildCli().catch((error: unknown) => {
    removeCliBuild();
    console.warn(`test setup: CLI build failed, tests run the CLI through tsx: ${(error as Error).message}`);
  });
  const javaOutput: string[] = [];
  const ddb = await startDynamoDbLocal({
    log: (line) => {
      javaOutput.push(line);
      if (javaOutput.length > 50) javaOutput.shift();
    },
  }).catch((error: unknown) => {
    throw new Error(`test setup: could not start DynamoDB Local: ${(error as Error).message}`);
  });
  project.provide("dynamodbEndpoint", ddb.endpoint);
  process.env.JITV_TEST_DYNAMODB_ENDPOINT = ddb.endpoint;
  return async () => {
    await ddb.stop();
  };
}
