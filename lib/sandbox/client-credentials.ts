import * as z from "zod";

/** How the client proves its identity to the token endpoint (RFC 6749 section 2.3.1). */
export type ClientSecretAuthMethod = "client_secret_basic" | "client_secret_post";

export interface ClientCredentialsTokenRequest {
  /** The issuer's token endpoint, e.g. `http://127.0.0.1:8788/agents/token`. */
  readonly tokenEndpoint: string;
  readonly clientId: string;
  /** Sent only to `tokenEndpoint`; never part of an error message. */
  readonly clientSecret: string;
  /**
   * RFC 8707 resource indicator (an absolute URI) naming the API the token is for; sent as
   * `resource`. The local issuer defaults it, so it can be left out there.
   */
  readonly resource?: string;
  /** Space-separated scopes, sent as `scope` when given. */
  readonly scope?: string;
  /**
   * The local issuer's delegation endpoint only: the agent (client id of a customer-facing agent)
   * the user's token is for, sent as `actor`; the token then carries `act`.
   */
  readonly actor?: string;
  /**
   * `client_secret_basic` sends the credentials in the `Authorization` header,
   * `client_secret_post` in the form body.
   * @default "client_secret_basic"
   */
  readonly authMethod?: ClientSecretAuthMethod;
  /**
   * Gives up after this long.
   * @default 10000
   */
  readonly timeoutMs?: number;
}

/**
 * A token request that failed: the endpoint was unreachable, answered with an OAuth error,
 * or answered with something that is not a Bearer token. A client-side error of the sandbox
 * tooling, so not a `JitvError`: it never becomes a jitv API response.
 */
export class TokenRequestError extends Error {
  /** HTTP status of the token endpoint's answer; absent when there was none. */
  readonly status?: number;
  /** The OAuth `error` code (e.g. `invalid_client`), when the endpoint sent one. */
  readonly oauthError?: string;

  constructor(message: string, options: { status?: number; oauthError?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TokenRequestError";
    this.status = options.status;
    this.oauthError = options.oauthError;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_DESCRIPTION_LENGTH = 200;

const tokenResponseSchema = z.object({
  access_token: z.string().min(1),
  token_type: z.string().refine((type) => type.toLowerCase() === "bearer", "must be Bearer"),
});

const oauthErrorSchema = z.object({
  error: z.string().min(1),
  error_description: z.string().optional(),
});

/**
 * Gets an access token with the OAuth 2.0 client credentials grant (RFC 6749 section 4.4):
 * how agents of the sandbox's local issuer, and workloads of many real identity
 * providers, obtain their own workload token.
 *
 * @returns the access token (for the local issuer: an ES256 JWT valid for 600 s).
 * @throws TokenRequestError naming the endpoint, the client id and what failed — HTTP
 *   status and OAuth `error` code, a timeout, or an unusable response. The client secret is
 *   never part of the message.
 * @example
 * ```ts
 * const token = await fetchClientCredentialsToken({
 *   tokenEndpoint: issuer.issuers.workforceAgents.tokenEndpoint,
 *   clientId: "agent-a",
 *   clientSecret: "agent-a-secret",
 * });
 * await fetch("http://127.0.0.1:8787/v1/tasks", { headers: { authorization: `Bearer ${token}` } });
 * ```
 */
export async function fetchClientCredentialsToken(request: ClientCredentialsTokenRequest): Promise<string> {
  const { tokenEndpoint, clientId, clientSecret } = request;
  const what = `token request to ${tokenEndpoint} for client ${JSON.stringify(clientId)}`;
  if (!URL.canParse(tokenEndpoint) || !/^https?:$/.test(new URL(tokenEndpoint).protocol)) {
    throw new TokenRequestError(`${what} failed: the token endpoint is not an http(s) URL`);
  }
  const timeoutMs = request.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  const body = new URLSearchParams({ grant_type: "client_credentials" });
  if (request.resource !== undefined) body.set("resource", request.resource);
  if (request.scope !== undefined) body.set("scope", request.scope);
  if (request.actor !== undefined) body.set("actor", request.actor);
  const headers: Record<string, string> = {
    accept: "application/json",
    "content-type": "application/x-www-form-urlencoded",
  };
  if ((request.authMethod ?? "client_secret_basic") === "client_secret_basic") {
    const credentials = `${formEncode(clientId)}:${formEncode(clientSecret)}`;
    headers.authorization = `Basic ${Buffer.from(credentials, "utf8").toString("base64")}`;
  } else {
    body.set("client_id", clientId);
    body.set("client_secret", clientSecret);
  }

  let response: Response;
  let text: string;
  try {
    response = await fetch(tokenEndpoint, {
      method: "POST",
      headers,
      body,
      redirect: "error",
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    const reason =
      error instanceof Error && error.name === "TimeoutError"
        ? `no answer within ${timeoutMs} ms`
        : `the endpoint could not be reached (${networkReason(error)})`;
    throw new TokenRequestError(`${what} failed: ${reason}`, { cause: error });
  }

  const json = parseJson(text);
  if (!response.ok) {
    const oauth = oauthErrorSchema.safeParse(json);
    if (!oauth.success) {
      throw new TokenRequestError(`${what} failed: HTTP ${response.status} without an OAuth error body`, {
        status: response.status,
      });
    }
    const description =
      oauth.data.error_description === undefined
        ? ""
        : ` (${sanitise(oauth.data.error_description, clientSecret)})`;
    throw new TokenRequestError(
      `${what} failed: HTTP ${response.status} ${sanitise(oauth.data.error, clientSecret)}${description}`,
      { status: response.status, oauthError: oauth.data.error },
    );
  }

  const token = tokenResponseSchema.safeParse(json);
  if (!token.success) {
    const problem = token.error.issues.map((issue) => `${issue.path.join(".") || "body"}: ${issue.message}`);
    throw new TokenRequestError(`${what} returned an unusable response (${problem.join("; ")})`, {
      status: response.status,
    });
  }
  return token.data.access_token;
}

/** application/x-www-form-urlencoded, as RFC 6749 section 2.3.1 asks for Basic credentials. */
function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, "+");
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Server-provided text made safe for a message: one line, bounded, and never the secret. */
function sanitise(text: string, secret: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  let out = text.replace(/[\u0000-\u001f\u007f]/g, " ");
  if (secret.length > 0) out = out.split(secret).join("[redacted]");
  return out.length > MAX_DESCRIPTION_LENGTH ? `${out.slice(0, MAX_DESCRIPTION_LENGTH)}…` : out;
}

function networkReason(error: unknown): string {
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error && "code" in cause && typeof cause.code === "string") return cause.code;
  return error instanceof Error ? error.message : String(error);
}
