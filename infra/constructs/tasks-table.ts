import { RemovalPolicy, Stack } from "aws-cdk-lib";
import { AttributeType, BillingMode, StreamViewType, Table, TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import { Key } from "aws-cdk-lib/aws-kms";
import { Construct } from "constructs";
import { ENV } from "../../lib/config.js";
import { TTL_ATTRIBUTE, tableDefinition } from "../../lib/store/table.js";
import type { JitvFunction } from "./jitv-function.js";

/** The item actions a function may be granted on the table. */
export type TableAction = "GetItem" | "PutItem" | "UpdateItem" | "DeleteItem" | "Query";

const ATTRIBUTE_TYPES: Readonly<Record<string, AttributeType>> = {
  S: AttributeType.STRING,
  N: AttributeType.NUMBER,
  B: AttributeType.BINARY,
};

/**
 * jitv's one DynamoDB table, with the keys and indexes lib/store/table.ts defines for DynamoDB
 * Local (so both agree): on-demand, encrypted with its own rotating customer-managed key, point-
 * in-time recovery, deletion protection, retained with the key when the stack goes, TTL on
 * `ttlEpoch`, and a `NEW_AND_OLD_IMAGES` stream (the TTL backstop reads it).
 */
export class TasksTable extends Construct {
  readonly table: Table;
  readonly key: Key;
  /** The environment a function needs to find the table. */
  readonly environment: Readonly<Record<string, string>>;
  private readonly indexArns: string[];

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const stackName = Stack.of(this).stackName;
    this.key = new Key(this, "TableKey", {
      description: `${stackName}: encrypts the jitv table and its stream`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const definition = tableDefinition("jitv");
    const attribute = (name: string | undefined) => {
      const scalar = definition.AttributeDefinitions?.find((a) => a.AttributeName === name)?.AttributeType;
      const type = scalar === undefined ? undefined : ATTRIBUTE_TYPES[scalar];
      if (name === undefined || type === undefined) throw new Error(`table definition: no type for ${name}`);
      return { name, type };
    };
    const keys = (schema: readonly { AttributeName?: string; KeyType?: string }[] | undefined) => ({
      partitionKey: attribute(schema?.find((k) => k.KeyType === "HASH")?.AttributeName),
      ...(schema?.some((k) => k.KeyType === "RANGE")
        ? { sortKey: attribute(schema.find((k) => k.KeyType === "RANGE")?.AttributeName) }
        : {}),
    });
    this.table = new Table(this, "Table", {
      ...keys(definition.KeySchema),
      billingMode: BillingMode.PAY_PER_REQUEST,
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      timeToLiveAttribute: TTL_ATTRIBUTE,
      stream: StreamViewType.NEW_AND_OLD_IMAGES,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const index of definition.GlobalSecondaryIndexes ?? []) {
      if (index.IndexName === undefined || index.Projection?.ProjectionType !== "ALL") {
        throw new Error(`table definition: index ${index.IndexName} must be named and project ALL`);
      }
      this.table.addGlobalSecondaryIndex({ indexName: index.IndexName, ...keys(index.KeySchema) });
    }
    this.indexArns = (definition.GlobalSecondaryIndexes ?? []).map(
      (index) => `${this.table.tableArn}/index/${index.IndexName}`,
    );
    this.environment = { [ENV.tableName]: this.table.tableName };
  }

  /**
   * Lets `fn` do exactly `actions` on the table's items (and `Query` on its indexes), and use the
   * table key as DynamoDB does on its behalf: decrypt to read, encrypt to write.
   */
  grantItems(fn: JitvFunction, actions: readonly TableAction[], options: { indexes?: boolean } = {}): void {
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "TableItems",
        actions: actions.map((action) => `dynamodb:${action}`),
        resources: [this.table.tableArn],
      }),
    );
    if (options.indexes) {
      fn.role.addToPrincipalPolicy(
        new PolicyStatement({ sid: "TableIndexes", actions: ["dynamodb:Query"], resources: this.indexArns }),
      );
    }
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "TableKey",
        actions: ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
        resources: [this.key.keyArn],
      }),
    );
  }
}
