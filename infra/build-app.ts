import { type App, Aspects, type Environment } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { parseAccountList } from "../lib/domain/accounts.js";
import { ConfigError } from "../lib/domain/errors.js";
import { readDeployConfig } from "./config.js";
import { TargetAccountStack } from "./stacks/target-account-stack.js";
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

/**
 * Builds the target-account app: the stack `JitvTargetAccount` holding the revoker role, for
 * context `vendingAccount` (the vending stack's account) and optional `rolePath`. Deployed with
 * credentials of each target account.
 * @throws ConfigError when `vendingAccount` is not one 12-digit account id
 */
export function buildTargetAccountApp(app: App, options: BuildVendingAppOptions = {}): TargetAccountStack {
  const raw = app.node.tryGetContext("vendingAccount");
  let vendingAccount: string | undefined;
  try {
    const accounts = parseAccountList(String(raw ?? ""));
    vendingAccount = accounts.length === 1 ? accounts[0] : undefined;
  } catch {
    vendingAccount = undefined;
  }
  if (vendingAccount === undefined) {
    throw new ConfigError(
      "vendingAccount: must be the 12-digit account id of the vending stack (-c vendingAccount=...)",
    );
  }
  const rolePath = app.node.tryGetContext("rolePath");
  const stack = new TargetAccountStack(app, "JitvTargetAccount", {
    vendingAccount,
    ...(typeof rolePath === "string" ? { rolePath } : {}),
    ...(options.env === undefined ? {} : { env: options.env }),
    description: "jitv target account: the revoker role the vending stack revokes through",
  });
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  return stack;
}
