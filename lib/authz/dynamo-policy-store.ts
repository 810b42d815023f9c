import { type DynamoDBDocumentClient, GetCommand, TransactWriteCommand } from "@aws-sdk/lib-dynamodb";
import { ConflictError, InternalError, InvalidRequestError } from "../domain/errors.js";
import { storeUnavailable } from "../store/dynamo-errors.js";
import { queryAll } from "../store/dynamo-query.js";
import {
  GSI1,
  POLICYSETS_GSI1PK,
  policySetItem,
  policySetKey,
  policyVersionItem,
  policyVersionKey,
} from "../store/table.js";
import { BASELINE_POLICY_SET_NAME, baselinePolicies } from "./baseline.js";
import type { PolicySnapshot, PolicySource } from "./cedar-authorizer.js";
import { loadPolicySet, validatePolicySet } from "./cedar-policy-set.js";

/** Options of {@link DynamoPolicyStore}. */
export interface DynamoPolicyStoreOptions {
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /** Clock for `updatedAt`. @default () => new Date() */
  readonly now?: () => Date;
  /** Items per `Query` page. @default DynamoDB's 1 MB page */
  readonly pageSize?: number;
}

/** A stored version of one policy set. */
export interface PolicySetVersion {
  readonly name: string;
  readonly version: number;
  readonly text: string;
  /** RFC 3339. */
  readonly updatedAt: string;
}

/** A policy set as `list` shows it: its current version and the ids of its policies. */
export interface PolicySetSummary {
  readonly name: string;
  readonly version: number;
  readonly updatedAt: string;
  readonly policyIds: readonly string[];
}

/** What a policy set's name may look like. */
export const POLICY_SET_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** Times a `put` without `expectedVersion` starts again on top of a writer that got ahead of it. */
const MAX_REBASES = 4;
/** Times a write that lost a transaction race (DynamoDB's `TransactionConflict`) is tried again. */
const MAX_TRANSACTION_RETRIES = 5;

/**
 * Named Cedar policy sets in DynamoDB, versioned: every version is kept
 * (`POLICYSET#<name>` / `V#<version>`) and a `CURRENT` pointer names the current one. A write
 * adds the next version and moves the pointer in one transaction, conditional on the pointer
 * still being at the version the writer started from, so concurrent writers cannot lose an
 * update. Every write is validated against the Cedar schema first.
 *
 * The authorizer reads {@link current}: all sets' current versions as one policy set, whose
 * version string changes whenever any set changes.
 *
 * @example
 * const store = new DynamoPolicyStore({ client: doc, tableName: "jitv" });
 * const { version } = await store.put("customer-zone", cedarText, 0); // 0: the set must not exist yet
 * await store.put("customer-zone", newText, version);
 */
export class DynamoPolicyStore implements PolicySource {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #now: () => Date;
  readonly #pageSize: number | undefined;

  constructor(options: DynamoPolicyStoreOptions) {
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#now = options.now ?? (() => new Date());
    this.#pageSize = options.pageSize;
  }

  /**
   * Validates `text` and stores it as the next version of policy set `name`.
   *
   * @param expectedVersion the version the caller based its change on (`0`: the set must not
   *   exist yet). Left out, the write goes on top of whatever is current (retrying if another
   *   writer gets in between), still without overwriting anyone's version.
   * @returns the version written
   * @throws InvalidRequestError for a bad name, or a policy set that does not parse or
   *   validate (with Cedar's messages), or whose `@id`s clash with another set's or a built-in
   *   baseline policy's
   * @throws ConflictError when the set is not at `expectedVersion` (another writer won)
   */
  async put(
    name: string,
    text: string,
    expectedVersion?: number,
  ): Promise<{ name: string; version: number }> {
    if (!POLICY_SET_NAME_PATTERN.test(name)) {
      throw new InvalidRequestError(`policy set name must match ${POLICY_SET_NAME_PATTERN.source}`);
    }
    if (expectedVersion !== undefined && !(Number.isInteger(expectedVersion) && expectedVersion >= 0)) {
      throw new InvalidRequestError("expectedVersion must be a whole number ≥ 0");
    }
    const policies = validatePolicySet(text);
    await this.#assertUniqueIds(
      name,
      policies.map((p) => p.id),
    );

    let rebases = 0;
    let retries = 0;
    for (;;) {
      const base = expectedVersion ?? (await this.#currentVersion(name));
      try {
        await this.#write(name, text, base);
        return { name, version: base + 1 };
      } catch (error) {
        if (cancelledFor(error, "TransactionConflict") && retries++ < MAX_TRANSACTION_RETRIES) {
          await sleep(10 + Math.random() * 40);
          continue;
        }
        if (!cancelledFor(error, "ConditionalCheckFailed")) throw unavailable(error);
        if (expectedVersion === undefined && rebases++ < MAX_REBASES) continue;
        const actual = await this.#currentVersion(name);
        throw new ConflictError(
          `policy set ${name} is at version ${actual}, not ${base}; read it again and retry`,
        );
      }
    }
  }

  /**
   * Every policy set's current version as one policy set (sets in name order). Reads the
   * index, so on deployed DynamoDB a write may take a moment to show.
   */
  async current(): Promise<PolicySnapshot> {
    const sets = await this.#currentSets();
    return {
      version: sets.map((s) => `${s.name}@${s.version}`).join(","),
      text: sets.map((s) => `// policy set ${s.name}, version ${s.version}\n${s.text}\n`).join("\n"),
    };
  }

  /** Every policy set with its current version, by name. */
  async list(): Promise<PolicySetSummary[]> {
    return (await this.#currentSets()).map((s) => ({
      name: s.name,
      version: s.version,
      updatedAt: s.updatedAt,
      policyIds: idsOf(s.text),
    }));
  }

  /**
   * One version of a policy set (strongly consistent).
   * @param version @default the current version
   * @returns `undefined` when the set or that version does not exist
   */
  async get(name: string, version?: number): Promise<PolicySetVersion | undefined> {
    const key = version === undefined ? policySetKey(name) : policyVersionKey(name, version);
    let item: Record<string, unknown> | undefined;
    try {
      const out = await this.#client.send(
        new GetCommand({ TableName: this.#tableName, Key: key, ConsistentRead: true }),
      );
      item = out.Item;
    } catch (error) {
      throw unavailable(error);
    }
    return item ? decode(item) : undefined;
  }

  async #write(name: string, text: string, base: number): Promise<void> {
    const entry = { name, version: base + 1, text, updatedAt: this.#now().toISOString() };
    await this.#client.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Put: {
              TableName: this.#tableName,
              Item: policyVersionItem(entry),
              ConditionExpression: "attribute_not_exists(pk)",
            },
          },
          {
            Put: {
              TableName: this.#tableName,
              Item: policySetItem(entry),
              ...(base === 0
                ? { ConditionExpression: "attribute_not_exists(pk)" }
                : {
                    ConditionExpression: "#version = :base",
                    ExpressionAttributeNames: { "#version": "version" },
                    ExpressionAttributeValues: { ":base": base },
                  }),
            },
          },
        ],
      }),
    );
  }

  async #currentVersion(name: string): Promise<number> {
    return (await this.get(name))?.version ?? 0;
  }

  /** A policy's `@id` names it in audit events, so ids must be unique across all sets and the built-in ones. */
  async #assertUniqueIds(name: string, ids: readonly string[]): Promise<void> {
    const mine = new Set(ids);
    const builtIn = baselinePolicies().find((p) => mine.has(p.id));
    if (builtIn !== undefined) {
      throw new InvalidRequestError(
        `invalid policy set: @id "${builtIn.id}" is already used by jitv's ${BASELINE_POLICY_SET_NAME} policies; choose another @id`,
      );
    }
    for (const set of await this.#currentSets()) {
      if (set.name === name) continue;
      const clash = idsOf(set.text).find((id) => mine.has(id));
      if (clash !== undefined) {
        throw new InvalidRequestError(
          `invalid policy set: @id "${clash}" is already used in policy set ${set.name}`,
        );
      }
    }
  }

  async #currentSets(): Promise<PolicySetVersion[]> {
    const items = await queryAll(
      this.#client,
      {
        TableName: this.#tableName,
        IndexName: GSI1,
        KeyConditionExpression: "gsi1pk = :sets",
        ExpressionAttributeValues: { ":sets": POLICYSETS_GSI1PK },
        Limit: this.#pageSize,
      },
      unavailable,
    );
    const sets = items.filter((item) => item.type === "policy-set").map(decode);
    return sets.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

function decode(item: Record<string, unknown>): PolicySetVersion {
  const { name, version, text, updatedAt } = item;
  if (
    typeof name !== "string" ||
    typeof version !== "number" ||
    typeof text !== "string" ||
    typeof updatedAt !== "string"
  ) {
    throw new InternalError(`stored policy set ${String(name)} is malformed`);
  }
  return { name, version, text, updatedAt };
}

/** `@id`s of a stored (hence validated) set; one that no longer parses contributes none. */
function idsOf(text: string): string[] {
  try {
    return loadPolicySet(text).map((p) => p.id);
  } catch {
    return [];
  }
}

/** Whether a transaction was cancelled with `code` as (one of) its reasons. */
function cancelledFor(error: unknown, code: "ConditionalCheckFailed" | "TransactionConflict"): boolean {
  if (!(error instanceof Error) || error.name !== "TransactionCanceledException") return false;
  const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
  return reasons.some((r) => r.Code === code);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const unavailable = (error: unknown) => storeUnavailable("policy store", error);
