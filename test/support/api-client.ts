import type { HttpRequest, HttpResponse } from "../../lib/http/types.js";

// biome-ignore lint/suspicious/noExplicitAny: response bodies are asserted field by field
export type Json = any;

/** What a test sends: a bearer token, a JSON body (or a raw one), extra headers, a query. */
export interface ApiCall {
  readonly token?: string;
  readonly body?: unknown;
  readonly rawBody?: string;
  readonly headers?: Record<string, string>;
  readonly query?: Record<string, string>;
}

/**
 * Calls an API core (`composeApi(...).api`) as the HTTP edge would, each request with its own
 * `req-N` id, and parses the JSON answer.
 * @example
 * const call = apiClient(() => core.api);
 * const res = await call("GET", "/v1/tasks", { token });
 */
export function apiClient(api: () => (req: HttpRequest) => Promise<HttpResponse>) {
  let seq = 0;
  return async (
    method: string,
    path: string,
    options: ApiCall = {},
  ): Promise<HttpResponse & { json: Json; requestId: string }> => {
    const requestId = `req-${++seq}`;
    const response = await api()({
      method,
      path,
      headers: {
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...options.headers,
      },
      query: options.query ?? {},
      body: options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
      requestId,
    });
    return { ...response, json: JSON.parse(response.body), requestId };
  };
}
