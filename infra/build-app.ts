import { type App, Aspects, type Environment } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { readDeployConfig } from "./config.js";
import { VendingStack } from "./stacks/vending-stack.js";

export interface BuildVendingAppOptions {
  /** Account and region to deploy to. @default - environment-agnostic */
  readonly env?: Environment;
  /** Directory a relative `issuersFile` is resolved against. @default process.cwd() */
  readonly cwd?: string;
}

/**
 * Builds the deployable app from its CDK context: validates the context (the issuers file
 * with the loader the functions use), adds the vending stack `Jitv-<stage>`, and applies
 * cdk-nag's AWS Solutions checks to everything. `infra/app.ts` and the infra tests both call
 * this, so the tests check what `cdk deploy` deploys.
 *
 * @throws ConfigError naming every invalid or missing context value
 */
export function buildVendingApp(app: App, options: BuildVendingAppOptions = {}): VendingStack {
  const config = readDeployConfig((key) => app.node.tryGetContext(key), options.cwd);
  const stack = new VendingStack(app, `Jitv-${config.stage}`, {
    ...config,
    ...(options.env === undefined ? {} : { env: options.env }),
    description: `jitv vending stack (${config.stage}): just-in-time AWS credentials for agents`,
  });
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return stack;
}
