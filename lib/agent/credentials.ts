/**
 * `jitv/credentials`: an AWS SDK v3 credential provider backed by jitv tasks, with the same cache
 * and refresh as `jitv credential-process` (CONTRACT.md section 8).
 */
import {
  type AgentIdentity,
  defaultCacheDir,
  FileTaskStore,
  MemoryTaskStore,
  type TaskStore,
  tokenIdentity,
} from "./cache.js";
import { spendingFirst, taskCredentials } from "./session.js";

export { ApiError, ApiUnreachableError } from "./api.js";
export { ApprovalPendingError } from "./session.js";

/** Options of {@link fromJitv}. */
export interface FromJitvOptions {
  /** The jitv API base URL, e.g. `https://….execute-api….amazonaws.com` or `http://127.0.0.1:8787`. */
  readonly api: string;
  /** The task template to vend. */
  readonly template: string;
  readonly parameters?: Readonly<Record<string, string>>;
  /** The agent's token; or {@link FromJitvOptions.tokenProvider} for one fetched when needed. */
  readonly token?: string;
  /** Returns a fresh agent token; called only when the API must be called (and once to know the agent). */
  readonly tokenProvider?: () => string | Promise<string>;
  /** Lifetime of a new task. @default the template's default */
  readonly ttlSeconds?: number;
  /** Recorded in the audit trail of a new task. */
  readonly purpose?: string;
  /**
   * The cache folder, shared with `jitv credential-process`; `false` keeps the task in this
   * process only. @default `$JITV_CACHE_DIR`, `$XDG_CACHE_HOME/jitv` or `~/.cache/jitv`
   */
  readonly cache?: string | false;
}

/** The shape of an AWS SDK v3 `AwsCredentialIdentity` (structural: no SDK import needed). */
export interface JitvCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  readonly expiration: Date;
}

/**
 * An AWS SDK v3 credential provider (`AwsCredentialIdentityProvider`): each call answers the
 * cached task's credentials while they have more than 5 minutes left, refreshes within the task
 * after that, and starts a new task only when the task has ended.
 *
 * @example
 * import { S3Client } from "@aws-sdk/client-s3";
 * import { fromJitv } from "jitv/credentials";
 * const s3 = new S3Client({
 *   credentials: fromJitv({ api: process.env.JITV_API!, template: "s3-reports-read", tokenProvider: getAgentToken }),
 * });
 */
export function fromJitv(options: FromJitvOptions): () => Promise<JitvCredentials> {
  const { token, tokenProvider } = options;
  if ((token === undefined) === (tokenProvider === undefined))
    throw new TypeError("fromJitv: pass exactly one of token and tokenProvider");
  const getToken = async () => (token ?? (await (tokenProvider as () => string | Promise<string>)())).trim();
  const api = options.api.replace(/\/+$/, "");
  const request = {
    template: options.template,
    ...(options.parameters === undefined ? {} : { parameters: options.parameters }),
    ...(options.ttlSeconds === undefined ? {} : { ttlSeconds: options.ttlSeconds }),
    ...(options.purpose === undefined ? {} : { purpose: options.purpose }),
  };
  // The first call learns the agent from a token; calls made meanwhile wait for the same store.
  let ready: Promise<TaskStore> | undefined;
  // A token fetched only to learn the agent is spent on the API call that follows, if any.
  let unused: string | undefined;
  const storeFor = (agent: AgentIdentity): TaskStore =>
    options.cache === false
      ? new MemoryTaskStore()
      : new FileTaskStore(options.cache ?? defaultCacheDir(), {
          api,
          agent,
          template: options.template,
          ...(options.parameters === undefined ? {} : { parameters: options.parameters }),
        });
  return async () => {
    ready ??= getToken().then((first) => {
      unused = first;
      return storeFor(tokenIdentity(first));
    });
    // A failed first call (no token) lets the next one try again.
    const store = await ready.catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    const first = unused;
    unused = undefined;
    const task = await taskCredentials({
      api,
      request,
      store,
      renew: true,
      token: spendingFirst(first, getToken),
    });
    return {
      accessKeyId: task.credentials.AccessKeyId,
      secretAccessKey: task.credentials.SecretAccessKey,
      sessionToken: task.credentials.SessionToken,
      expiration: new Date(task.credentials.Expiration),
    };
  };
}
