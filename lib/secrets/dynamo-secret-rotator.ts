import { randomUUID } from "node:crypto";
import { type DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { isConditionalCheckFailed, storeUnavailable } from "../store/dynamo-errors.js";
import { queryAll } from "../store/dynamo-query.js";
import { GSI1, type ItemKey } from "../store/table.js";
import { secretNameFromArn } from "./secret-arn.js";
import { RotationInProgressError, type SecretRotator } from "./secret-rotator.js";

/** Options of {@link DynamoSecretRotator}. */
export interface DynamoSecretRotatorProps {
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /** Clock for `rotatedAt`. @default () => new Date() */
  readonly now?: () => Date;
}

/** What the sandbox shows of a secret: which version is current, never a value (it has none). */
export interface SandboxSecretDescription {
  /** The secret's name: the ARN's resource without the random suffix AWS appends. */
  readonly name: string;
  readonly arn: string;
  /** The current version; a new random UUID after every rotation. */
  readonly versionId: string;
}

/** The `type` attribute of a sandbox secret item (an item kind beside those of `table.ts`). */
export const SANDBOX_SECRET_TYPE = "sandbox-secret";

const enc = encodeURIComponent;
const SK = "SECRET";
/** Optimistic attempts per rotation; each lost race means another rotation took effect meanwhile. */
const MAX_ATTEMPTS = 25;

/** Key of a sandbox secret: `SANDBOXSECRET#<arn>` / `SECRET`. */
export function sandboxSecretKey(arn: string): ItemKey {
  return { pk: `SANDBOXSECRET#${enc(arn)}`, sk: SK };
}

/** `gsi1pk` of sandbox secrets with a given name: query it (with `gsi1sk = SECRET`) to find one by name. */
export function sandboxSecretNameGsi1pk(name: string): string {
  return `SANDBOXSECRETNAME#${enc(name)}`;
}

/** A sandbox secret as stored. */
interface SecretItem {
  readonly arn: string;
  readonly name: string;
  readonly currentVersionId: string;
  readonly rotatedAt: string;
}

/**
 * Adapter: the sandbox's {@link SecretRotator}. There is no Secrets Manager and no value, so it
 * keeps each secret's version history in the jitv table and a rotation moves `currentVersionId` to
 * a new random UUID — enough to show that a task's end made the version it could read stale.
 *
 * Item (`type = sandbox-secret`): `pk = SANDBOXSECRET#<arn>`, `sk = SECRET`,
 * `gsi1pk = SANDBOXSECRETNAME#<name>`, `gsi1sk = SECRET`, `arn`, `name`, `currentVersionId`,
 * `previousVersionId` (absent before the first rotation), `rotatedAt` (when `currentVersionId`
 * became current) and `rotations`. Variable parts of keys are `encodeURIComponent`-encoded.
 *
 * A rotation is an update conditional on the version it read, retried on a lost race, so
 * concurrent rotations each take effect once: none is lost and `rotations` counts them all.
 *
 * @example
 * const rotator = new DynamoSecretRotator({ client: doc, tableName: "jitv" });
 * await rotator.rotate("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-creds-AbCdEf");
 * await rotator.describe("db-creds"); // { name: "db-creds", arn: "arn:…", versionId: "…" }
 */
export class DynamoSecretRotator implements SecretRotator {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #now: () => Date;

  constructor(props: DynamoSecretRotatorProps) {
    this.#client = props.client;
    this.#tableName = props.tableName;
    this.#now = props.now ?? (() => new Date());
  }

  /**
   * Makes a new version of the secret current. A secret seen for the first time gets a seed
   * version first, so its first rotation shows a change too.
   * @throws InvalidRequestError when `secretArn` is not a full secret ARN
   * @throws RotationInProgressError when other rotations kept winning the race (retry later)
   * @throws UpstreamUnavailableError when DynamoDB fails
   */
  async rotate(secretArn: string): Promise<void> {
    const name = secretNameFromArn(secretArn);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      // First use: seed a version (or read the one a concurrent call seeded), then rotate it.
      const current =
        (await this.#read(secretArn)) ?? (await this.#seed(secretArn, name)) ?? (await this.#read(secretArn));
      if (!current) continue;
      try {
        await this.#client.send(
          new UpdateCommand({
            TableName: this.#tableName,
            Key: sandboxSecretKey(secretArn),
            UpdateExpression:
              "SET currentVersionId = :next, previousVersionId = :previous, rotatedAt = :now, rotations = rotations + :one",
            ConditionExpression: "currentVersionId = :previous",
            ExpressionAttributeValues: {
              ":next": randomUUID(),
              ":previous": current.currentVersionId,
              ":now": this.#now().toISOString(),
              ":one": 1,
            },
          }),
        );
        return;
      } catch (error) {
        if (!isConditionFailure(error)) throw unavailable(error);
      }
      // Another rotation took effect first; spread the retries so racers do not collide again.
      await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 5 * attempt)));
    }
    throw new RotationInProgressError(secretArn);
  }

  /**
   * Creates the secret's seed version unless it exists. Safe to call again and concurrently.
   * @throws InvalidRequestError when `secretArn` is not a full secret ARN
   * @throws UpstreamUnavailableError when DynamoDB fails
   */
  async ensure(secretArn: string): Promise<void> {
    await this.#seed(secretArn, secretNameFromArn(secretArn));
  }

  /**
   * The secret's current version, looked up by ARN (anything starting with `arn:`, read strongly
   * consistent) or by name (a query on `gsi1`, eventually consistent on DynamoDB). If secrets of
   * several accounts or regions share the name, the most recently rotated one is returned.
   * @returns `undefined` when the sandbox has never seen the secret
   * @throws UpstreamUnavailableError when DynamoDB fails
   */
  async describe(nameOrArn: string): Promise<SandboxSecretDescription | undefined> {
    const item = nameOrArn.startsWith("arn:")
      ? await this.#read(nameOrArn)
      : await this.#findByName(nameOrArn);
    return item && { name: item.name, arn: item.arn, versionId: item.currentVersionId };
  }

  /** Writes the seed version unless the secret exists; returns it when this call wrote it. */
  async #seed(arn: string, name: string): Promise<SecretItem | undefined> {
    const item: SecretItem = {
      arn,
      name,
      currentVersionId: randomUUID(),
      rotatedAt: this.#now().toISOString(),
    };
    try {
      await this.#client.send(
        new PutCommand({
          TableName: this.#tableName,
          Item: {
            ...sandboxSecretKey(arn),
            type: SANDBOX_SECRET_TYPE,
            gsi1pk: sandboxSecretNameGsi1pk(name),
            gsi1sk: SK,
            ...item,
            rotations: 0,
          },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      );
      return item;
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw unavailable(error);
    }
  }

  async #read(arn: string): Promise<SecretItem | undefined> {
    try {
      const out = await this.#client.send(
        new GetCommand({ TableName: this.#tableName, Key: sandboxSecretKey(arn), ConsistentRead: true }),
      );
      return decode(out.Item);
    } catch (error) {
      throw unavailable(error);
    }
  }

  async #findByName(name: string): Promise<SecretItem | undefined> {
    const items = await queryAll(
      this.#client,
      {
        TableName: this.#tableName,
        IndexName: GSI1,
        KeyConditionExpression: "gsi1pk = :pk AND gsi1sk = :sk",
        ExpressionAttributeValues: { ":pk": sandboxSecretNameGsi1pk(name), ":sk": SK },
      },
      unavailable,
    );
    let latest: SecretItem | undefined;
    for (const raw of items) {
      const item = decode(raw);
      if (item && (!latest || item.rotatedAt > latest.rotatedAt)) latest = item;
    }
    return latest;
  }
}

function decode(item: Record<string, unknown> | undefined): SecretItem | undefined {
  if (item?.type !== SANDBOX_SECRET_TYPE) return undefined;
  const { arn, name, currentVersionId, rotatedAt } = item;
  if (
    typeof arn !== "string" ||
    typeof name !== "string" ||
    typeof currentVersionId !== "string" ||
    typeof rotatedAt !== "string"
  ) {
    return undefined;
  }
  return { arn, name, currentVersionId, rotatedAt };
}

function isConditionFailure(error: unknown): boolean {
  return isConditionalCheckFailed(error);
}

const unavailable = (error: unknown) => storeUnavailable("sandbox secret store", error);
