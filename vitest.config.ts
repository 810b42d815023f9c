import { defineConfig } from "vitest/config";

// The AWS SDK's notice that its 2027 releases need Node 22 (this machine runs 20), kept out of
// test output: set here, it reaches the global setup, the test workers and the CLI and sandbox
// processes the tests start (they inherit it).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
