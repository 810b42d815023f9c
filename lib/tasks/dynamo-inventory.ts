import {
  type DynamoDBDocumentClient,
  QueryCommand,
  type QueryCommandInput,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import * as z from "zod";
import { InvalidRequestError } from "../domain/errors.js";
import type { Zone } from "../domain/identity.js";
import type { AgentRef, Task } from "../domain/task.js";
import { storeUnavailable } from "../store/dynamo-errors.js";
import {
  AGENTS_GSI1PK,
  agentSeenGsi1sk,
  agentSeenKey,
  agentTasksGsi1pk,
  agentTenantSeenKey,
  GSI1,
  GSI2,
  GSI3,
  type ItemType,
  statusGsi2pk,
  stripKeys,
  tenantAgentsGsi1pk,
  tenantTasksGsi3pk,
} from "../store/table.js";
import type {
  AgentPage,
  AgentRegistry,
  AgentSummary,
  Inventory,
  InventoryScope,
  ListTasksInput,
  TaskPage,
} from "./inventory.js";

/** Options of {@link DynamoInventory}. */
export interface DynamoInventoryOptions {
  readonly client: DynamoDBDocumentClient;
  readonly tableName: string;
  /** Decides which `active` tasks have expired. @default () => new Date() */
  readonly now?: () => Date;
}

/** Default and largest page size. */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 100;
/** Queries one page may make while filters drop items, before it returns what it has. */
const MAX_QUERIES_PER_PAGE = 10;

type Item = Record<string, unknown>;
type IndexName = typeof GSI1 | typeof GSI2 | typeof GSI3;

/** Key attributes of each index, as they appear in its `LastEvaluatedKey`. */
const INDEX_KEYS = {
  [GSI1]: { pk: "gsi1pk", sk: "gsi1sk" },
  [GSI2]: { pk: "gsi2pk", sk: "gsi2sk" },
  [GSI3]: { pk: "gsi3pk", sk: "gsi3sk" },
} as const satisfies Record<IndexName, { pk: string; sk: string }>;

/**
 * The admin inventory (CONTRACT.md section 3, `GET /v1/tasks` and `GET /v1/agents`): tasks by
 * status, agent and template, and the registry of agents that vended. Every read is a query on
 * an index — by agent on `gsi1`, by status on `gsi2`, agents on `gsi1` under `AGENTS` — never a
 * scan. Tasks come newest first.
 *
 * DynamoDB applies `Limit` before filters, so a page keeps querying (a bounded number of times)
 * until it holds `limit` tasks and has seen one more, and resumes the next page right after the
 * last task it returned. When filters drop many items, a page may hold fewer than `limit` tasks
 * and still carry a `nextToken`: follow it. No `nextToken` means nothing follows.
 * `nextToken` is the base64url JSON of the index key to resume from, checked against the query
 * it is passed to, so a tampered token is a `400`, not a DynamoDB error.
 */
export class DynamoInventory implements Inventory, AgentRegistry {
  readonly #client: DynamoDBDocumentClient;
  readonly #tableName: string;
  readonly #now: () => Date;

  constructor(options: DynamoInventoryOptions) {
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * One page of tasks in a status (default `active`), optionally of one agent and/or template.
   * `active` and `pending_approval` leave out tasks whose deadline has passed: DynamoDB TTL and
   * the lifecycle may not have moved them yet, and readers never trust an expired record.
   * @throws InvalidRequestError for a `limit` outside 1..100 or a `nextToken` not issued for this query
   * @throws UpstreamUnavailableError when DynamoDB fails
   * @example
   * const { tasks, nextToken } = await inventory.listTasks({ template: "reports-read", limit: 20 });
   */
  async listTasks(input: ListTasksInput = {}): Promise<TaskPage> {
    const status = input.status ?? "active";
    const limit = pageSize(input.limit);
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const filters: string[] = [];
    let index: IndexName;
    let partition: string;
    const byStatus = () => {
      names["#status"] = "status";
      values[":status"] = status;
      filters.push("#status = :status");
    };
    if (input.tenant !== undefined) {
      // Only delegated tasks have a gsi3 key, so the partition holds tasks of this tenant and nothing else.
      index = GSI3;
      partition = tenantTasksGsi3pk(input.tenant);
      byStatus();
      if (input.agent) {
        names["#agent"] = "agent";
        names["#issuer"] = "issuer";
        names["#id"] = "id";
        values[":agentIssuer"] = input.agent.issuer;
        values[":agentId"] = input.agent.id;
        filters.push("#agent.#issuer = :agentIssuer", "#agent.#id = :agentId");
      }
    } else if (input.agent) {
      index = GSI1;
      partition = agentTasksGsi1pk(input.agent.issuer, input.agent.id);
      names["#type"] = "type";
      values[":task"] = "task" satisfies ItemType;
      filters.push("#type = :task");
      byStatus();
    } else {
      index = GSI2;
      partition = statusGsi2pk(status);
    }
    if (input.zone !== undefined) {
      names["#zone"] = "zone";
      values[":zone"] = input.zone;
      filters.push("#zone = :zone");
    }
    if (input.template !== undefined) {
      names["#template"] = "template";
      values[":template"] = input.template;
      filters.push("#template = :template");
    }
    if (status === "active" || status === "pending_approval") {
      names["#expiresAt"] = "expiresAt";
      values[":now"] = this.#now().toISOString();
      filters.push("#expiresAt > :now");
    }
    const { items, nextToken } = await this.#page(
      {
        IndexName: index,
        KeyConditionExpression: "#ipk = :ipk",
        ...(filters.length === 0 ? {} : { FilterExpression: filters.join(" AND ") }),
        ExpressionAttributeNames: { ...names, "#ipk": INDEX_KEYS[index].pk },
        ExpressionAttributeValues: { ...values, ":ipk": partition },
        ScanIndexForward: false,
      },
      { index, partition, pkPrefix: "TASK#", sk: "TASK" },
      limit,
      input.nextToken,
    );
    return { tasks: items.map((item) => stripKeys(item) as unknown as Task), ...nextTokenField(nextToken) };
  }

  /**
   * Records that an agent vended: creates its registry item on first sight (`firstSeen`), sets
   * `lastSeen` and `zone`, and (unless `countTask` is false) adds one to `totalTasks`.
   * @param at when the agent was seen (the task's `createdAt`)
   * @throws UpstreamUnavailableError when DynamoDB fails
   * @example
   * await inventory.recordAgentSeen({ issuer: agent.issuer, id: agent.id, zone: agent.zone }, new Date(task.createdAt));
   */
  async recordAgentSeen(
    agent: AgentRef & { readonly zone: Zone },
    at: Date,
    options: { readonly countTask?: boolean; readonly tenant?: string } = {},
  ): Promise<void> {
    const { tenant } = options;
    // The agent's own item, and for a delegated task one per tenant: a customer-zone admin's
    // registry then counts only its own tenant's tasks.
    const records = [
      { key: agentSeenKey(agent.issuer, agent.id), gsi1pk: AGENTS_GSI1PK },
      ...(tenant === undefined
        ? []
        : [{ key: agentTenantSeenKey(agent.issuer, agent.id, tenant), gsi1pk: tenantAgentsGsi1pk(tenant) }]),
    ];
    try {
      await Promise.all(
        records.map(({ key, gsi1pk }) =>
          this.#client.send(
            new UpdateCommand({
              TableName: this.#tableName,
              Key: key,
              UpdateExpression:
                "SET #type = :type, gsi1pk = :gsi1pk, gsi1sk = :gsi1sk, issuer = :issuer, #id = :id, #zone = :zone, " +
                "firstSeen = if_not_exists(firstSeen, :at), lastSeen = :at ADD totalTasks :count",
              ExpressionAttributeNames: { "#type": "type", "#id": "id", "#zone": "zone" },
              ExpressionAttributeValues: {
                ":type": "agent" satisfies ItemType,
                ":gsi1pk": gsi1pk,
                ":gsi1sk": agentSeenGsi1sk(agent.issuer, agent.id),
                ":issuer": agent.issuer,
                ":id": agent.id,
                ":zone": agent.zone,
                ":at": at.toISOString(),
                ":count": options.countTask === false ? 0 : 1,
              },
            }),
          ),
        ),
      );
    } catch (error) {
      throw unavailable(error);
    }
  }

  /**
   * One page of the agents that vended, ordered by issuer and id, each with its count of
   * active, unexpired tasks (one `Select: COUNT` query per agent, run in parallel).
   * @throws InvalidRequestError for a `limit` outside 1..100 or a tampered `nextToken`
   * @throws UpstreamUnavailableError when DynamoDB fails
   */
  async listAgents(
    input: InventoryScope & { readonly limit?: number; readonly nextToken?: string } = {},
  ): Promise<AgentPage> {
    const limit = pageSize(input.limit);
    const { tenant } = input;
    const partition = tenant === undefined ? AGENTS_GSI1PK : tenantAgentsGsi1pk(tenant);
    const { items, nextToken } = await this.#page(
      {
        IndexName: GSI1,
        KeyConditionExpression: "gsi1pk = :agents",
        FilterExpression: input.zone === undefined ? "#type = :agent" : "#type = :agent AND #zone = :zone",
        ExpressionAttributeNames: {
          "#type": "type",
          ...(input.zone === undefined ? {} : { "#zone": "zone" }),
        },
        ExpressionAttributeValues: {
          ":agents": partition,
          ":agent": "agent" satisfies ItemType,
          ...(input.zone === undefined ? {} : { ":zone": input.zone }),
        },
      },
      {
        index: GSI1,
        partition,
        pkPrefix: "AGENTSEEN#",
        sk: tenant === undefined ? "AGENT" : agentTenantSeenKey("", "", tenant).sk,
      },
      limit,
      input.nextToken,
    );
    const now = this.#now().toISOString();
    const agents = await Promise.all(
      items.map(async (item): Promise<AgentSummary> => {
        const issuer = String(item.issuer);
        const id = String(item.id);
        return {
          issuer,
          id,
          zone: item.zone as Zone,
          firstSeen: String(item.firstSeen),
          lastSeen: String(item.lastSeen),
          activeTasks: await this.#countActive(issuer, id, now, tenant),
          totalTasks: typeof item.totalTasks === "number" ? item.totalTasks : 0,
        };
      }),
    );
    return { agents, ...nextTokenField(nextToken) };
  }

  async #countActive(issuer: string, id: string, now: string, tenant: string | undefined): Promise<number> {
    let count = 0;
    let start: Item | undefined;
    const ofTenant = tenant === undefined ? "" : " AND #obo.#tenant = :tenant";
    do {
      const out = await this.#query({
        IndexName: GSI1,
        KeyConditionExpression: "gsi1pk = :agent",
        FilterExpression: `#type = :task AND #status = :active AND #expiresAt > :now${ofTenant}`,
        ExpressionAttributeNames: {
          "#type": "type",
          "#status": "status",
          "#expiresAt": "expiresAt",
          ...(tenant === undefined ? {} : { "#obo": "onBehalfOf", "#tenant": "tenant" }),
        },
        ExpressionAttributeValues: {
          ":agent": agentTasksGsi1pk(issuer, id),
          ":task": "task" satisfies ItemType,
          ":active": "active",
          ":now": now,
          ...(tenant === undefined ? {} : { ":tenant": tenant }),
        },
        Select: "COUNT",
        ...(start ? { ExclusiveStartKey: start } : {}),
      });
      count += out.Count ?? 0;
      start = out.LastEvaluatedKey;
    } while (start);
    return count;
  }

  /**
   * Up to `limit` matching items of one index partition, and where the next page resumes. Reads
   * one matching item ahead, so a full page whose query has nothing more carries no token.
   */
  async #page(
    query: Omit<QueryCommandInput, "TableName">,
    expected: TokenScope,
    limit: number,
    token: string | undefined,
  ): Promise<{ items: Item[]; nextToken?: Item }> {
    let start = token === undefined ? undefined : decodeToken(token, expected);
    const items: Item[] = [];
    for (let round = 0; round < MAX_QUERIES_PER_PAGE; round++) {
      const out = await this.#query({
        ...query,
        Limit: limit + 1 - items.length,
        ...(start ? { ExclusiveStartKey: start } : {}),
      });
      for (const item of out.Items ?? []) {
        if (items.length === limit) {
          // `item` is the look-ahead: resume right after the last item returned.
          const last = items[items.length - 1] as Item;
          return { items, nextToken: indexKey(last, expected.index) };
        }
        items.push(item);
      }
      start = out.LastEvaluatedKey;
      if (!start) return { items };
    }
    // Filters dropped too much to fill the page within the budget: resume where reading stopped.
    return { items, nextToken: start };
  }

  async #query(input: Omit<QueryCommandInput, "TableName">) {
    try {
      return await this.#client.send(new QueryCommand({ ...input, TableName: this.#tableName }));
    } catch (error) {
      throw unavailable(error);
    }
  }
}

/** What a `nextToken` must hold to be passed back to a query. */
interface TokenScope {
  readonly index: IndexName;
  /** The queried index partition. */
  readonly partition: string;
  /** Prefix of the table `pk` of the items listed. */
  readonly pkPrefix: string;
  /** The table `sk` of the items listed. */
  readonly sk: string;
}

const tokenKeySchema = z
  .object({
    pk: z.string().min(1).max(2048),
    sk: z.string().min(1).max(1024),
    gsi1pk: z.string().min(1).max(2048).optional(),
    gsi1sk: z.string().min(1).max(1024).optional(),
    gsi2pk: z.string().min(1).max(2048).optional(),
    gsi2sk: z.string().min(1).max(1024).optional(),
    gsi3pk: z.string().min(1).max(2048).optional(),
    gsi3sk: z.string().min(1).max(1024).optional(),
  })
  .strict();

/** Largest accepted `nextToken` (the key of one item, base64url). */
const MAX_TOKEN_LENGTH = 8192;

function encodeToken(key: Item): string {
  return Buffer.from(JSON.stringify(key), "utf8").toString("base64url");
}

/**
 * Turns a `nextToken` back into an `ExclusiveStartKey`, refusing anything that is not a key of
 * the partition being queried.
 * @throws InvalidRequestError when the token is malformed or belongs to another query
 */
function decodeToken(token: string, scope: TokenScope): Item {
  const invalid = () => new InvalidRequestError("nextToken is invalid");
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(token))
    throw invalid();
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw invalid();
  }
  const parsed = tokenKeySchema.safeParse(json);
  if (!parsed.success) throw invalid();
  const key: Item = parsed.data;
  const own = INDEX_KEYS[scope.index];
  const others = Object.entries(INDEX_KEYS)
    .filter(([name]) => name !== scope.index)
    .flatMap(([, keys]) => [keys.pk, keys.sk]);
  if (
    key[own.pk] !== scope.partition ||
    key[own.sk] === undefined ||
    others.some((name) => key[name] !== undefined) ||
    !parsed.data.pk.startsWith(scope.pkPrefix) ||
    parsed.data.sk !== scope.sk
  ) {
    throw invalid();
  }
  return key;
}

/** The `ExclusiveStartKey` that resumes a query of `index` right after `item`. */
function indexKey(item: Item, index: IndexName): Item {
  const { pk, sk } = INDEX_KEYS[index];
  return { pk: item.pk, sk: item.sk, [pk]: item[pk], [sk]: item[sk] };
}

function nextTokenField(key: Item | undefined): { nextToken?: string } {
  return key ? { nextToken: encodeToken(key) } : {};
}

function pageSize(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new InvalidRequestError(`limit must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  }
  return limit;
}

const unavailable = (error: unknown) => storeUnavailable("inventory", error);
