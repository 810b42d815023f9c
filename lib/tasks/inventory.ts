import type { Zone } from "../domain/identity.js";
import type { AgentRef, Task, TaskStatus } from "../domain/task.js";

/** What an admin's listing covers: no field, everything; `zone` / `tenant` narrow it. */
export interface InventoryScope {
  readonly zone?: Zone;
  readonly tenant?: string;
}

/** Filters and page of {@link Inventory.listTasks}. */
export interface ListTasksInput {
  /** @default "active" */
  readonly status?: TaskStatus;
  /** Only this agent's tasks. */
  readonly agent?: AgentRef;
  /** Only tasks of this template. */
  readonly template?: string;
  /** Most tasks in the page, 1..100. @default 50 */
  readonly limit?: number;
  /** The `nextToken` of the previous page of the same query. */
  readonly nextToken?: string;
  /**
   * Only the delegated tasks of this tenant (a customer-zone admin's view). The query reads the
   * tenant's own index partition, so no other tenant's task is read, counted or put in a `nextToken`.
   */
  readonly tenant?: string;
  /** Only tasks of this zone. */
  readonly zone?: Zone;
}

export interface TaskPage {
  readonly tasks: Task[];
  /** Present when more tasks may follow: pass it back to get them. */
  readonly nextToken?: string;
}

/** An agent as the registry knows it. Times are RFC 3339. */
export interface AgentSummary {
  readonly issuer: string;
  readonly id: string;
  readonly zone: Zone;
  readonly firstSeen: string;
  readonly lastSeen: string;
  /** Its `active` tasks whose deadline has not passed. */
  readonly activeTasks: number;
  /** Tasks it ever created. */
  readonly totalTasks: number;
}

export interface AgentPage {
  readonly agents: AgentSummary[];
  readonly nextToken?: string;
}

/** Port: the admin inventory (CONTRACT.md section 3, `GET /v1/tasks` and `GET /v1/agents`). */
export interface Inventory {
  listTasks(input?: ListTasksInput): Promise<TaskPage>;
  listAgents(
    input?: InventoryScope & { readonly limit?: number; readonly nextToken?: string },
  ): Promise<AgentPage>;
}

/** Port: the registry of agents that vended, behind `GET /v1/agents`. */
export interface AgentRegistry {
  /** Records that an agent vended (for a delegated task, also under the tenant it acted for). */
  recordAgentSeen(
    agent: AgentRef & { readonly zone: Zone },
    at: Date,
    options?: { readonly countTask?: boolean; readonly tenant?: string },
  ): Promise<void>;
}
