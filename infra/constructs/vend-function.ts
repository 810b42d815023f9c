import { Aws, Duration, Stack } from "aws-cdk-lib";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { RetentionDays } from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { ENV } from "../../lib/config.js";
import { JitvFunction } from "./jitv-function.js";
import type { TargetRoles } from "./target-roles.js";
import type { TaskLifecycle } from "./task-lifecycle.js";
import type { TasksTable } from "./tasks-table.js";

/** Where the API function reads the issuers file that synth copied into its bundle. */
export const BUNDLED_ISSUERS_FILE = "/var/task/issuers.json";

export interface VendFunctionProps {
  /** Absolute path of the API handler (`functions/api.ts`). */
  readonly entry: string;
  /** Absolute path of the validated trusted-issuers file, copied into the bundle. */
  readonly issuersFile: string;
  /** The deployment stage, part of the role's fixed name. */
  readonly stage: string;
  readonly table: TasksTable;
  readonly lifecycle: TaskLifecycle;
  readonly targetRoles: TargetRoles;
  readonly logRetention: RetentionDays;
}

/**
 * The function behind every API route (vend, refresh, complete, revoke, read tasks). Its role
 * has a fixed name, `jitv-<stage>-vend-<region>`, because every JitTargetRole's trust policy names
 * it: replacing the role keeps the ARN.
 */
export class VendFunction extends Construct {
  readonly function: JitvFunction;

  constructor(scope: Construct, id: string, props: VendFunctionProps) {
    super(scope, id);
    this.function = new JitvFunction(this, "ApiFunction", {
      entry: props.entry,
      description: "jitv HTTP API: vend, refresh, complete, revoke, read tasks",
      logRetention: props.logRetention,
      memorySize: 512,
      // API Gateway gives up after 29 s; STS, DynamoDB and Step Functions retries fit in this.
      timeout: Duration.seconds(20),
      environment: {
        ...props.table.environment,
        [ENV.issuersFile]: BUNDLED_ISSUERS_FILE,
        [ENV.stateMachineArn]: props.lifecycle.stateMachine.stateMachineArn,
        // A template whose role is in any other account never vends: nothing could revoke there.
        [ENV.targetAccounts]: props.targetRoles.accounts.join(","),
      },
      bundledFiles: [{ source: props.issuersFile, name: "issuers.json" }],
      roleName: `jitv-${props.stage}-vend-${Aws.REGION}`,
    });
    const fn = this.function;
    // Task record, lease, idempotency key and active slot (one transaction), replay entries,
    // rate buckets, approvals, task updates; task and agent inventories on the indexes.
    props.table.grantItems(fn, ["GetItem", "PutItem", "UpdateItem"], { indexes: true });
    props.targetRoles.grantVend(fn);
    props.lifecycle.grantStart(fn);
    props.lifecycle.grantAnswerTaskTokens(fn);
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "NotifyApprovers",
        actions: ["events:PutEvents"],
        resources: [
          Stack.of(this).formatArn({ service: "events", resource: "event-bus", resourceName: "default" }),
        ],
      }),
    );
  }
}
