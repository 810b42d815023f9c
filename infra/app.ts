import { App } from "aws-cdk-lib";
import { ConfigError } from "../lib/domain/errors.js";
import { buildVendingApp } from "./build-app.js";

const app = new App();
try {
  buildVendingApp(app, {
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  // A configuration problem is the deployer's to fix: the message, not a stack trace.
  process.stderr.write(`jitv: ${error.message}\n`);
  process.exit(1);
}
app.synth();
