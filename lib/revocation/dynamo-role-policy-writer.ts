import { DeleteCommand, type DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { storeUnavailable } from "../store/dynamo-errors.js";
import { queryAll } from "../store/dynamo-query.js";
import { sandboxRolePolicyItem, sandboxRolePolicyKey } from "../store/table.js";
import { EMPTY_OVERFLOW_DOCUMENT, MANAGED_POLICY_QUOTA_CHARS, nonWhitespaceLength } from "./policy.js";
import {
  INLINE_POLICY_QUOTA_CHARS,
  RolePolicyLimitError,
  type RolePolicyWriter,
} from "./revocation-store.js";

/** Prefix of the stored name of an emulated overflow managed policy (not an inline policy). */
const OVERFLOW_PREFIX = "overflow:";

/** Options of {@link DynamoRolePolicyWriter}. */
export interface DynamoRolePolicyWriterOptions {
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /**
   * Non-whitespace characters of the role's own inline policies (those it was created with, e.g.
   * CDK `grant*` DefaultPolicies), which count against IAM's quota too. @default () => 0
   */
  readonly ownInlineChars?: (roleArn: string) => number;
  /**
   * How many revocation overflow managed policies each role carries (as `JitTargetRole` creates
   * them). @default () => 0
   */
  readonly overflowSlots?: (roleArn: string) => number;
}

/**
 * Adapter: the {@link RolePolicyWriter} of the sandbox. It keeps the inline policies jitv would
 * put on IAM as `sandbox-role-policy` items of the single table (`pk = SANDBOXROLE#<roleArn>`,
 * `sk = POLICY#<name>`), so the sandbox's `/v1/sandbox/simulate` evaluates exactly the
 * revocation policy the deployed stack would project. It enforces IAM's inline quota
 * ({@link INLINE_POLICY_QUOTA_CHARS} non-whitespace characters across the role's inline policies,
 * its own included), so revocation's size limits show up locally as `LimitExceeded` would.
 *
 * @example
 * const writer = new DynamoRolePolicyWriter({ client: doc, tableName: "jitv" });
 * const revoked = await writer.get(roleArn, REVOCATION_POLICY_NAME);
 */
export class DynamoRolePolicyWriter implements RolePolicyWriter {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #ownInlineChars: (roleArn: string) => number;
  readonly #overflowSlots: (roleArn: string) => number;

  constructor(options: DynamoRolePolicyWriterOptions) {
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#ownInlineChars = options.ownInlineChars ?? (() => 0);
    this.#overflowSlots = options.overflowSlots ?? (() => 0);
  }

  /** The emulated overflow managed policies of the role: `overflow-1` … `overflow-N`. */
  async overflowPolicies(roleArn: string): Promise<readonly string[]> {
    return Array.from({ length: this.#overflowSlots(roleArn) }, (_, i) => `overflow-${i + 1}`);
  }

  async getOverflow(roleArn: string, policyId: string): Promise<string> {
    return (await this.get(roleArn, `${OVERFLOW_PREFIX}${policyId}`)) ?? EMPTY_OVERFLOW_DOCUMENT;
  }

  /** @throws RolePolicyLimitError over IAM's 6,144 characters per managed policy */
  async putOverflow(roleArn: string, policyId: string, document: string): Promise<void> {
    if (nonWhitespaceLength(document) > MANAGED_POLICY_QUOTA_CHARS) {
      throw new RolePolicyLimitError(
        `managed policy ${policyId} of role ${roleArn} would exceed its size quota`,
      );
    }
    await this.#store(roleArn, `${OVERFLOW_PREFIX}${policyId}`, document);
  }

  /** IAM's quota minus the role's own policies and every other policy stored for it. */
  async freeInlineChars(roleArn: string, policyName: string): Promise<number> {
    const { pk } = sandboxRolePolicyKey(roleArn, policyName);
    const items = await queryAll(
      this.#client,
      {
        TableName: this.#tableName,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": pk },
        ConsistentRead: true,
      },
      unavailable,
    );
    const others = items
      .filter(
        (item) =>
          item.policyName !== policyName &&
          typeof item.document === "string" &&
          !String(item.policyName).startsWith(OVERFLOW_PREFIX),
      )
      .reduce((sum, item) => sum + nonWhitespaceLength(item.document as string), 0);
    return Math.max(0, INLINE_POLICY_QUOTA_CHARS - this.#ownInlineChars(roleArn) - others);
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
   * @throws RolePolicyLimitError when the role's inline policies would exceed IAM's quota
   * @throws UpstreamUnavailableError when DynamoDB fails
   */
  async put(roleArn: string, policyName: string, document: string): Promise<void> {
    if (nonWhitespaceLength(document) > (await this.freeInlineChars(roleArn, policyName))) {
      throw new RolePolicyLimitError(`IAM inline policy limits of role ${roleArn} are exceeded`);
    }
    await this.#store(roleArn, policyName, document);
  }

  async #store(roleArn: string, policyName: string, document: string): Promise<void> {
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
