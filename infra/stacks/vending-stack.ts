import { RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import { AttributeType, BillingMode, StreamViewType, Table } from "aws-cdk-lib/aws-dynamodb";
import type { Construct } from "constructs";
import { TTL_ATTRIBUTE } from "../../lib/tasks/table.js";

export interface VendingStackProps extends StackProps {
  /** Deployment stage, used in resource names. @default "dev" */
  readonly stage?: string;
}

/**
 * The jitv vending stack. For now: the single table (tasks, templates, replay entries,
 * idempotency keys, TTL leases) with TTL and a stream; the functions, API, state machine
 * and alarms follow.
 */
export class VendingStack extends Stack {
  readonly table: Table;

  constructor(scope: Construct, id: string, props: VendingStackProps = {}) {
    super(scope, id, props);
    this.table = new Table(this, "Table", {
      partitionKey: { name: "pk", type: AttributeType.STRING },
      sortKey: { name: "sk", type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: TTL_ATTRIBUTE,
      stream: StreamViewType.NEW_AND_OLD_IMAGES,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: "gsi1",
      partitionKey: { name: "gsi1pk", type: AttributeType.STRING },
      sortKey: { name: "gsi1sk", type: AttributeType.STRING },
    });
  }
}
