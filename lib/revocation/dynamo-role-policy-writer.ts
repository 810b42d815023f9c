import { DeleteCommand, type DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { storeUnavailable } from "../store/dynamo-errors.js";
import { sandboxRolePolicyItem, sandboxRolePolicyKey } from "../store/table.js";
import type { RolePolicyWriter } from "./revocation-store.js";

/** Options of {@link DynamoRolePolicyWriter}. */
export interface DynamoRolePolicyWriterOptions {
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
}

/**
 * Adapter: the {@link RolePolicyWriter} of the sandbox. It keeps the inline policies jitv would
 * put on IAM as `sandbox-role-policy` items of the single table (`pk = SANDBOXROLE#<roleArn>`,
 * `sk = POLICY#<name>`), so the sandbox's `/v1/sandbox/simulate` evaluates exactly the
 * revocation policy the deployed stack would project.
 *
 * @example
 * const writer = new DynamoRolePolicyWriter({ client: doc, tableName: "jitv" });
 * const revoked = await writer.get(roleArn, REVOCATION_POLICY_NAME);
 */
export class DynamoRolePolicyWriter implements RolePolicyWriter {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;

  constructor(options: DynamoRolePolicyWriterOptions) {
    this.#client = options.client;
    this.#tableName = options.tableName;
  }

  /**
   * Reads a policy document (strongly consistent).
   * @returns the JSON document, or `undefined` when the role has no policy of that name
   * @throws UpstreamUnavailableError when DynamoDB fails
   */
  async get(roleArn: string, policyName: string): Promise<string | undefined> {
    try {
      const out = await this.#client.send(
        new GetCommand({
          TableName: this.#tableName,
          Key: sandboxRolePolicyKey(roleArn, policyName),
          ConsistentRead: true,
        }),
      );
      const document = out.Item?.document;
      return typeof document === "string" ? document : undefined;
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * Creates or replaces a policy document.
   * @throws UpstreamUnavailableError when DynamoDB fails
   */
  async put(roleArn: string, policyName: string, document: string): Promise<void> {
    try {
      await this.#client.send(
        new PutCommand({
          TableName: this.#tableName,
          Item: sandboxRolePolicyItem(roleArn, policyName, document),
        }),
      );
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * Deletes a policy document; a missing one is fine.
   * @throws UpstreamUnavailableError when DynamoDB fails
   */
  async delete(roleArn: string, policyName: string): Promise<void> {
    try {
      await this.#client.send(
        new DeleteCommand({ TableName: this.#tableName, Key: sandboxRolePolicyKey(roleArn, policyName) }),
      );
    } catch (error) {
      throw unavailable(error);
    }
  }
}

/** Wraps an SDK failure without repeating its message (which may quote request data). */
const unavailable = (error: unknown) => storeUnavailable("sandbox role policy store", error);
