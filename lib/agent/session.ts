import { ApiError, getTask, refreshTask, type TaskAnswer, type VendRequest, vendTask } from "./api.js";
import type { CachedTask, StoredTask, TaskStore } from "./cache.js";

/** Credentials with more than this left are used as they are (CONTRACT.md section 8). */
export const FRESH_FOR_MS = 5 * 60_000;

/** The API vended a task that waits for approval: no credentials yet. */
export class ApprovalPendingError extends Error {
  constructor(readonly taskId: string) {
    super(`task ${taskId} waits for approval: ask an approver (jitv task approve ${taskId}), then try again`);
    this.name = "ApprovalPendingError";
  }
}

/**
 * A token source that hands out `first` (a token fetched only to learn the agent, so never
 * fetched twice) once, then asks `fetch` for each further token.
 */
export function spendingFirst(
  first: string | undefined,
  fetch: () => Promise<string>,
): () => Promise<string> {
  let unused = first;
  return async () => {
    const token = unused ?? (await fetch());
    unused = undefined;
    return token;
  };
}

/** Options of {@link taskCredentials}. */
export interface TaskSessionOptions {
  /** The API base URL, without a trailing slash. */
  readonly api: string;
  /** What a new task asks for. */
  readonly request: VendRequest;
  /** A fresh agent token, called before each API call (a token with a `jti` vends once). */
  readonly token: () => Promise<string>;
  readonly store: TaskStore;
  /**
   * Start a new task when the stored one has ended (credential-process, `fromJitv`); `false`
   * keeps to the stored task and fails once it has ended (`jitv exec`: the task is the command's).
   */
  readonly renew: boolean;
  /** @default () => Date.now() */
  readonly now?: () => number;
}

/**
 * The task's credentials: the stored ones while they have more than {@link FRESH_FOR_MS} left;
 * else refreshed within the same task (`POST /v1/tasks/{id}/credentials`); else (the task ended:
 * refresh answered 404/409, or its deadline is less than {@link FRESH_FOR_MS} away) a new task,
 * when `renew`. A task that waits for approval is stored too: later calls ask for its status and
 * wait for it ({@link ApprovalPendingError}) rather than ask for another. Callers sharing the
 * store take turns, so parallel callers share one task.
 */
export async function taskCredentials(options: TaskSessionOptions): Promise<CachedTask> {
  const now = options.now ?? Date.now;
  const fresh = (task: StoredTask | undefined): task is CachedTask =>
    task?.credentials !== undefined && Date.parse(task.credentials.Expiration) - now() > FRESH_FOR_MS;
  const cached = await options.store.read();
  if (fresh(cached)) return cached;
  return options.store.exclusive(async () => {
    // Another caller may have refreshed while this one waited for its turn.
    const current = await options.store.read();
    if (fresh(current)) return current;
    // 404/409 say the task has ended: with `renew`, that is the cue for a new task.
    const unlessEnded = (error: unknown) => {
      const ended = error instanceof ApiError && (error.status === 404 || error.status === 409);
      if (!ended || !options.renew) throw error;
      return undefined;
    };
    let answer: TaskAnswer | undefined;
    if (current && !current.credentials) {
      const task = await getTask(options.api, await options.token(), current.taskId).catch(unlessEnded);
      if (task?.status === "pending_approval") throw new ApprovalPendingError(task.taskId);
      if (task?.status === "active")
        answer = await refreshTask(options.api, await options.token(), task.taskId).catch(unlessEnded);
    } else if (current && (!options.renew || Date.parse(current.expiresAt) - now() > FRESH_FOR_MS)) {
      answer = await refreshTask(options.api, await options.token(), current.taskId).catch(unlessEnded);
    }
    answer ??= await vendTask(options.api, await options.token(), options.request);
    const { taskId, expiresAt, credentials } = answer;
    await options.store.write({ taskId, expiresAt, ...(credentials ? { credentials } : {}) });
    if (!credentials) throw new ApprovalPendingError(taskId);
    return { taskId, expiresAt, credentials };
  });
}
