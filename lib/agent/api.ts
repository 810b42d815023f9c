/**
 * The agent's HTTP client of the jitv API (CONTRACT.md section 3), shared by the CLI and the
 * `jitv/credentials` provider. Node built-ins only, so commands that use it start fast.
 */

/** The credentials of a task, as the API returns them. */
export interface TaskCredentials {
  readonly AccessKeyId: string;
  readonly SecretAccessKey: string;
  readonly SessionToken: string;
  /** RFC 3339. */
  readonly Expiration: string;
}

/** What `POST /v1/tasks` and `POST /v1/tasks/{id}/credentials` answer (the fields used here). */
export interface TaskAnswer {
  readonly taskId: string;
  readonly status: string;
  /** RFC 3339: the task's deadline. */
  readonly expiresAt: string;
  readonly credentials?: TaskCredentials;
}

/** One API answer: its HTTP status and parsed JSON body (or the raw text when not JSON). */
export interface ApiResponse {
  readonly ok: boolean;
  readonly status: number;
  readonly body: unknown;
}

/** The API answered with an error: its HTTP status and the contract's stable error code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(`HTTP ${status} ${code}: ${detail}`);
    this.name = "ApiError";
  }

  /** From an error answer; the message is the API's own (the contract keeps secrets out of it). */
  static from(res: ApiResponse): ApiError {
    const error = (res.body as { error?: { code?: string; message?: string } } | null)?.error;
    return error?.code
      ? new ApiError(res.status, error.code, error.message ?? "")
      : new ApiError(res.status, "unexpected_response", "not a jitv API error body");
  }
}

/** The API could not be reached at all (connection refused, DNS, timeout). */
export class ApiUnreachableError extends Error {
  constructor(
    readonly api: string,
    readonly reason: string,
  ) {
    super(`cannot reach the jitv API at ${api} (${reason})`);
    this.name = "ApiUnreachableError";
  }
}

/** Options of one {@link apiRequest}. */
export interface ApiRequestOptions {
  readonly token: string;
  readonly method?: string;
  readonly body?: unknown;
  readonly idempotencyKey?: string;
}

/**
 * One call to the API at `api` (no trailing slash), `path` starting with `/`. Never throws for an
 * HTTP error status (the caller decides); throws {@link ApiUnreachableError} when nothing answered.
 */
export async function apiRequest(
  api: string,
  path: string,
  options: ApiRequestOptions,
): Promise<ApiResponse> {
  let res: Response;
  try {
    res = await fetch(`${api}${path}`, {
      method: options.method ?? "GET",
      headers: {
        authorization: `Bearer ${options.token}`,
        ...(options.body === undefined ? {} : { "content-type": "application/json" }),
        ...(options.idempotencyKey ? { "idempotency-key": options.idempotencyKey } : {}),
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; errors?: { code?: string }[]; message?: string } })
      .cause;
    const reason = cause?.code ?? cause?.errors?.[0]?.code ?? cause?.message ?? (error as Error).message;
    throw new ApiUnreachableError(api, reason);
  }
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { ok: res.ok, status: res.status, body };
}

/** What the agent asks a task for (`POST /v1/tasks`). */
export interface VendRequest {
  readonly template: string;
  readonly parameters?: Readonly<Record<string, string>>;
  readonly ttlSeconds?: number;
  readonly purpose?: string;
}

/** `POST /v1/tasks`: a new task; an answer without credentials (approval needed) is returned as is. */
export async function vendTask(api: string, token: string, request: VendRequest): Promise<TaskAnswer> {
  const body = {
    template: request.template,
    ...(request.parameters && Object.keys(request.parameters).length
      ? { parameters: request.parameters }
      : {}),
    ...(request.ttlSeconds === undefined ? {} : { ttlSeconds: request.ttlSeconds }),
    ...(request.purpose === undefined ? {} : { purpose: request.purpose }),
  };
  return taskAnswer(await apiRequest(api, "/v1/tasks", { token, method: "POST", body }));
}

/** `POST /v1/tasks/{id}/credentials`: fresh credentials within the same task. */
export async function refreshTask(api: string, token: string, taskId: string): Promise<TaskAnswer> {
  return taskAnswer(
    await apiRequest(api, `/v1/tasks/${encodeURIComponent(taskId)}/credentials`, { token, method: "POST" }),
  );
}

/** `GET /v1/tasks/{id}`: the task (its `status`), without credentials. */
export async function getTask(api: string, token: string, taskId: string): Promise<TaskAnswer> {
  return taskAnswer(await apiRequest(api, `/v1/tasks/${encodeURIComponent(taskId)}`, { token }));
}

/** `POST /v1/tasks/{id}/complete`: the agent is done; revocation follows. */
export async function completeTask(api: string, token: string, taskId: string): Promise<void> {
  const res = await apiRequest(api, `/v1/tasks/${encodeURIComponent(taskId)}/complete`, {
    token,
    method: "POST",
  });
  if (!res.ok) throw ApiError.from(res);
}

function taskAnswer(res: ApiResponse): TaskAnswer {
  if (!res.ok) throw ApiError.from(res);
  const body = res.body as Partial<TaskAnswer> | null;
  if (typeof body?.taskId !== "string" || typeof body.expiresAt !== "string")
    throw new ApiError(res.status, "unexpected_response", "the answer names no task");
  return body as TaskAnswer;
}
