import { type DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { assertTargetAccountForPut, type TargetAccounts } from "../domain/accounts.js";
import { InternalError } from "../domain/errors.js";
import { parseTemplate, type TaskTemplate } from "../domain/template.js";
import { storeUnavailable } from "../store/dynamo-errors.js";
import { queryAll } from "../store/dynamo-query.js";
import { GSI1, type ItemType, TEMPLATES_GSI1PK, templateKey } from "../store/table.js";
import type { TemplateStore } from "./template-store.js";

/** Options of {@link DynamoTemplateStore}. */
export interface DynamoTemplateStoreOptions {
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /** Clock for `updatedAt`. @default () => new Date() */
  readonly now?: () => Date;
  /** Items per `Query` page of `list`. @default DynamoDB's 1 MB page */
  readonly pageSize?: number;
  /**
   * The deployment's target accounts: `put` refuses a template whose role is in any other account
   * (jitv could not revoke there). @default undefined (not checked)
   */
  readonly targetAccounts?: TargetAccounts;
}

/**
 * The DynamoDB adapter of {@link TemplateStore}. A template is stored as its JSON text in `body`
 * (so the stored form is exactly what was validated) and parsed again with `parseTemplate` on
 * every read. All templates share `gsi1pk = TEMPLATES`, so `list` is a query, never a scan.
 */
export class DynamoTemplateStore implements TemplateStore {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #now: () => Date;
  readonly #pageSize: number | undefined;
  readonly #targetAccounts: TargetAccounts;

  constructor(options: DynamoTemplateStoreOptions) {
    this.#targetAccounts = options.targetAccounts;
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#now = options.now ?? (() => new Date());
    this.#pageSize = options.pageSize;
  }

  /**
   * Reads a template by name (strongly consistent).
   * @throws InternalError when the stored body is no longer a valid template
   */
  async get(name: string): Promise<TaskTemplate | undefined> {
    let item: Record<string, unknown> | undefined;
    try {
      const out = await this.#client.send(
        new GetCommand({ TableName: this.#tableName, Key: templateKey(name), ConsistentRead: true }),
      );
      item = out.Item;
    } catch (error) {
      throw unavailable(error);
    }
    return item?.type === "template" ? decode(item) : undefined;
  }

  /**
   * Creates or replaces a template. The caller has validated it (`parseTemplate` + `lintTemplate`).
   * @throws InvalidRequestError when its role is not in a target account
   */
  async put(template: TaskTemplate): Promise<void> {
    assertTargetAccountForPut(template.roleArn, this.#targetAccounts);
    try {
      await this.#client.send(
        new PutCommand({
          TableName: this.#tableName,
          Item: {
            ...templateKey(template.name),
            type: "template" satisfies ItemType,
            gsi1pk: TEMPLATES_GSI1PK,
            gsi1sk: template.name,
            name: template.name,
            body: JSON.stringify(template),
            updatedAt: this.#now().toISOString(),
          },
        }),
      );
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * All templates, by name. Reads the index, so a template put a moment ago may be missing
   * on deployed DynamoDB (GSIs are eventually consistent).
   * @throws InternalError when a stored body is no longer a valid template
   */
  async list(): Promise<TaskTemplate[]> {
    const items = await queryAll(
      this.#client,
      {
        TableName: this.#tableName,
        IndexName: GSI1,
        KeyConditionExpression: "gsi1pk = :templates",
        ExpressionAttributeValues: { ":templates": TEMPLATES_GSI1PK },
        Limit: this.#pageSize,
      },
      unavailable,
    );
    return items.filter((item) => item.type === "template").map(decode);
  }
}

function decode(item: Record<string, unknown>): TaskTemplate {
  try {
    if (typeof item.body !== "string") throw new Error("body is not a string");
    return parseTemplate(JSON.parse(item.body));
  } catch (error) {
    // Not the caller's fault (it would otherwise surface as invalid_request): the stored data is bad.
    throw new InternalError(`stored template ${String(item.name)} is invalid`, { cause: error });
  }
}

const unavailable = (error: unknown) => storeUnavailable("template store", error);
