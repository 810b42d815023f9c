/**
 * The jitv calls the action makes (CONTRACT.md section 3), each with a fresh OIDC token of the
 * job: GitHub's tokens live minutes and are single-use for vending, so none is reused. Every
 * token and credential is masked (`::add-mask::`) the moment it arrives.
 */
import { ActionError, mask } from "./runner.js";

/** The name of the state that carries the task id from the main step to the post step. */
export const TASK_STATE = "task_id";

/** Each request, token or API, gives up after this long. */
const REQUEST_TIMEOUT_MS = 30_000;

export interface Credentials {
  readonly AccessKeyId: string;
  readonly SecretAccessKey: string;
  readonly SessionToken: string;
  readonly Expiration: string;
}

/** A task as the API shows it (`201`/`202` of a vend, `GET /v1/tasks/{id}`, a refresh). */
export interface TaskView {
  readonly taskId: string;
  readonly status: string;
  readonly template: string;
  readonly agent: { readonly issuer: string; readonly id: string };
  readonly onBehalfOf?: { readonly user: string; readonly tenant: string };
  readonly expiresAt: string;
  readonly reason?: string;
  readonly credentials?: Credentials;
}

/** A refusal from the API: its HTTP status and the contract's error code (`not_found`, `conflict`, …). */
export class ApiError extends ActionError {
  constructor(
    what: string,
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${what}: HTTP ${status}${code ? ` ${code}` : ""}${detail ? `: ${detail}` : ""}`);
  }

  /** Worth asking again: rate limited, or the API or one of its upstreams failed. */
  get transient(): boolean {
    return this.status === 429 || this.status >= 500;
  }
}

/**
 * The job's OIDC token for `audience`, from the runner's token service
 * (`ACTIONS_ID_TOKEN_REQUEST_URL`, which a job gets with `permissions: id-token: write`).
 * The token is masked before it is returned.
 */
export async function requestIdToken(audience: string): Promise<string> {
  const url = process.env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const bearer = process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!url || !bearer) {
    throw new ActionError(
      "jitv: this job cannot request an OIDC token: give it `permissions: id-token: write` (ACTIONS_ID_TOKEN_REQUEST_URL is not set)",
    );
  }
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new ActionError("jitv: ACTIONS_ID_TOKEN_REQUEST_URL is not a URL");
  }
  target.searchParams.set("audience", audience);
  let res: Response;
  try {
    res = await fetch(target, {
      headers: { authorization: `Bearer ${bearer}`, accept: "application/json" },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (failure) {
    throw new ActionError(`jitv: cannot reach the runner's OIDC token service (${reasonOf(failure)})`);
  }
  const body = await readJson(res);
  const value = (body as { value?: unknown } | undefined)?.value;
  if (res.status !== 200 || typeof value !== "string" || value === "") {
    throw new ActionError(
      `jitv: the runner's OIDC token service answered HTTP ${res.status} without a token`,
    );
  }
  mask(value);
  return value;
}

/** A client of one jitv API whose every call carries a fresh token from `token`. */
export class JitvClient {
  readonly #api: string;
  readonly #token: () => Promise<string>;

  constructor(api: string, token: () => Promise<string>) {
    this.#api = api.replace(/\/+$/, "");
    this.#token = token;
  }

  /** `POST /v1/tasks`: `201` active with credentials, or `202` pending approval. */
  vend(body: Record<string, unknown>): Promise<TaskView> {
    return this.#call("vend", "POST", "/v1/tasks", body);
  }

  get(taskId: string): Promise<TaskView> {
    return this.#call(`reading task ${taskId}`, "GET", `/v1/tasks/${encodeURIComponent(taskId)}`);
  }

  /** `POST /v1/tasks/{id}/credentials`: credentials of an `active` task. */
  credentials(taskId: string): Promise<TaskView> {
    return this.#call(
      `credentials of task ${taskId}`,
      "POST",
      `/v1/tasks/${encodeURIComponent(taskId)}/credentials`,
    );
  }

  complete(taskId: string): Promise<{ status: string }> {
    return this.#call(
      `completing task ${taskId}`,
      "POST",
      `/v1/tasks/${encodeURIComponent(taskId)}/complete`,
    );
  }

  async #call<T>(what: string, method: string, path: string, body?: unknown): Promise<T> {
    const token = await this.#token();
    let res: Response;
    try {
      res = await fetch(`${this.#api}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          accept: "application/json",
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (failure) {
      throw new ActionError(`jitv ${what}: cannot reach the jitv API at ${this.#api} (${reasonOf(failure)})`);
    }
    const json = await readJson(res);
    if (res.ok && typeof json === "object" && json !== null) {
      // Before the caller can write anything: from here on the runner hides them in the log.
      const credentials = (json as { credentials?: Partial<Credentials> }).credentials;
      for (const value of [
        credentials?.AccessKeyId,
        credentials?.SecretAccessKey,
        credentials?.SessionToken,
      ]) {
        if (typeof value === "string") mask(value);
      }
      return json as T;
    }
    const problem = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    throw new ApiError(
      `jitv ${what}`,
      res.status,
      typeof problem?.code === "string" ? problem.code : "",
      typeof problem?.message === "string"
        ? problem.message
        : res.ok
          ? "the answer is not a JSON object"
          : "",
    );
  }
}

/** The body as JSON, or `undefined`: never an error quoting the body, which may hold credentials. */
async function readJson(res: Response): Promise<unknown> {
  try {
    return JSON.parse(await res.text());
  } catch {
    return undefined;
  }
}

/** Why a request did not get an answer: the system error code where there is one (`ECONNREFUSED`). */
function reasonOf(failure: unknown): string {
  const cause = (failure as { cause?: { code?: unknown } }).cause;
  if (typeof cause?.code === "string") return cause.code;
  return failure instanceof Error && failure.name === "TimeoutError" ? "timed out" : "network error";
}
