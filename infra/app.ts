import { App } from "aws-cdk-lib";
import { ConfigError } from "../lib/domain/errors.js";
import { buildTargetAccountApp, buildVendingApp } from "./build-app.js";

const app = new App();
try {
  const env = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };
  // With -c vendingAccount=..., this app is the target-account stack (deployed in each target account).
  if (app.node.tryGetContext("vendingAccount") !== undefined) buildTargetAccountApp(app, { env });
  else buildVendingApp(app, { env });
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  // A configuration problem is the deployer's to fix: the message, not a stack trace.
  process.stderr.write(`jitv: ${error.message}\n`);
  process.exit(1);
}
app.synth();
