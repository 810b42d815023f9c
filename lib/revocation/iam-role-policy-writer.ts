import {
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  type IAMClient,
  PutRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { InternalError, type JitvError, UpstreamUnavailableError } from "../domain/errors.js";
import type { RolePolicyWriter } from "./revocation-store.js";

/** Options of {@link IamRolePolicyWriter}. */
export interface IamRolePolicyWriterProps {
  /**
   * The IAM client. Build it with `maxAttempts: 1`: the writer retries itself, and the SDK's
   * own retries would multiply with them.
   */
  readonly client: IAMClient;
  /**
   * Calls to IAM per operation, the first included.
   * @default 5
   */
  readonly maxAttempts?: number;
  /**
   * Backoff base: attempt n waits a random time in [0, min(maxDelayMs, baseDelayMs × 2^(n-1))).
   * @default 200
   */
  readonly baseDelayMs?: number;
  /**
   * Cap on one backoff wait.
   * @default 3000
   */
  readonly maxDelayMs?: number;
  /** Injected in tests so retries do not really wait. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Random number in [0, 1) for the jitter. @default Math.random */
  readonly random?: () => number;
}

/** IAM role ARN with an optional path; the role name is the last segment. */
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64})$/;

const RETRYABLE_ERRORS = new Set([
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
  "ServiceFailure",
  "ServiceFailureException",
  "InternalFailure",
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  // A concurrent modification of the same role: IAM asks the caller to retry.
  "ConcurrentModification",
  "ConcurrentModificationException",
]);
const NETWORK_ERROR_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
]);
const NO_SUCH_ENTITY = new Set(["NoSuchEntity", "NoSuchEntityException"]);

type Operation = "GetRolePolicy" | "PutRolePolicy" | "DeleteRolePolicy";

/** What is safe to keep of an IAM failure for operators' logs: no message text, no document. */
interface IamFailure {
  readonly name: string;
  readonly operation: Operation;
  readonly httpStatusCode?: number;
  readonly requestId?: string;
  readonly attempts: number;
}

/**
 * Adapter: the {@link RolePolicyWriter} on IAM inline role policies (`GetRolePolicy`,
 * `PutRolePolicy`, `DeleteRolePolicy`), addressed by the role name (the last path segment of
 * the role ARN). `get` returns the document decoded (IAM returns it URL-encoded) or `undefined`
 * when the role has no such policy; `delete` of a missing policy succeeds.
 *
 * Throttling, concurrent modification, HTTP 429/5xx and network errors are retried with
 * full-jitter exponential backoff. Every other failure, and retries running out, becomes
 * `UpstreamUnavailableError` whose message names at most the role, never the document.
 * IAM is eventually consistent: a put takes effect within seconds, not at once.
 *
 * @example
 * const writer = new IamRolePolicyWriter({ client: new IAMClient({ maxAttempts: 1 }) });
 * await writer.put(roleArn, REVOCATION_POLICY_NAME, document);
 */
export class IamRolePolicyWriter implements RolePolicyWriter {
  readonly #client: IAMClient;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;

  constructor(props: IamRolePolicyWriterProps) {
    this.#client = props.client;
    this.#maxAttempts = Math.max(1, Math.floor(props.maxAttempts ?? 5));
    this.#baseDelayMs = Math.max(0, props.baseDelayMs ?? 200);
    this.#maxDelayMs = Math.max(0, props.maxDelayMs ?? 3000);
    this.#sleep = props.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#random = props.random ?? Math.random;
  }

  /**
   * Reads an inline policy of the role.
   * @returns the decoded JSON document, or `undefined` when the role has no policy of that name
   * @throws UpstreamUnavailableError when IAM fails (a missing role included)
   */
  async get(roleArn: string, policyName: string): Promise<string | undefined> {
    const RoleName = roleNameOf(roleArn);
    const output = await this.#call("GetRolePolicy", RoleName, () =>
      this.#client.send(new GetRolePolicyCommand({ RoleName, PolicyName: policyName })),
    );
    if (output === NOT_FOUND) return undefined;
    const encoded = output.PolicyDocument;
    if (encoded === undefined) return undefined;
    try {
      return decodeURIComponent(encoded);
    } catch (error) {
      throw new UpstreamUnavailableError(`IAM returned an undecodable policy document for role ${RoleName}`, {
        cause: error,
      });
    }
  }

  /**
   * Creates or replaces an inline policy of the role.
   * @throws UpstreamUnavailableError when IAM refuses or fails (a missing role included)
   */
  async put(roleArn: string, policyName: string, document: string): Promise<void> {
    const RoleName = roleNameOf(roleArn);
    const output = await this.#call("PutRolePolicy", RoleName, () =>
      this.#client.send(
        new PutRolePolicyCommand({ RoleName, PolicyName: policyName, PolicyDocument: document }),
      ),
    );
    if (output === NOT_FOUND) throw new UpstreamUnavailableError(`IAM role ${RoleName} does not exist`);
  }

  /**
   * Deletes an inline policy of the role; a policy (or role) that does not exist is fine.
   * @throws UpstreamUnavailableError when IAM fails
   */
  async delete(roleArn: string, policyName: string): Promise<void> {
    const RoleName = roleNameOf(roleArn);
    await this.#call("DeleteRolePolicy", RoleName, () =>
      this.#client.send(new DeleteRolePolicyCommand({ RoleName, PolicyName: policyName })),
    );
  }

  async #call<T>(
    operation: Operation,
    roleName: string,
    send: () => Promise<T>,
  ): Promise<T | typeof NOT_FOUND> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (error) {
        if (NO_SUCH_ENTITY.has(nameOf(error))) return NOT_FOUND;
        if (isRetryable(error) && attempt < this.#maxAttempts) {
          const ceiling = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
          await this.#sleep(Math.floor(this.#random() * ceiling));
          continue;
        }
        throw toJitvError(error, operation, roleName, attempt);
      }
    }
  }
}

const NOT_FOUND = Symbol("NoSuchEntity");

/**
 * The role name of an IAM role ARN: its last path segment.
 * @throws InternalError when the value is not an IAM role ARN
 * @example
 * roleNameOf("arn:aws:iam::123456789012:role/jitv/team/reader"); // → "reader"
 */
export function roleNameOf(roleArn: string): string {
  const name = ROLE_ARN.exec(roleArn)?.[1];
  if (name === undefined) throw new InternalError("not an IAM role ARN");
  return name;
}

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
  $retryable?: { throttling?: unknown };
}

function shapeOf(error: unknown): ErrorShape {
  return typeof error === "object" && error !== null ? (error as ErrorShape) : {};
}

function nameOf(error: unknown): string {
  const { name } = shapeOf(error);
  return typeof name === "string" ? name : "UnknownError";
}

function httpStatusOf(error: unknown): number | undefined {
  const status = shapeOf(error).$metadata?.httpStatusCode;
  return typeof status === "number" ? status : undefined;
}

function isRetryable(error: unknown): boolean {
  const { code, $retryable } = shapeOf(error);
  if (RETRYABLE_ERRORS.has(nameOf(error))) return true;
  if (typeof code === "string" && NETWORK_ERROR_CODES.has(code)) return true;
  if ($retryable?.throttling === true) return true;
  const status = httpStatusOf(error);
  return status === 429 || (status !== undefined && status >= 500);
}

function toJitvError(error: unknown, operation: Operation, roleName: string, attempts: number): JitvError {
  const name = nameOf(error);
  const requestId = shapeOf(error).$metadata?.requestId;
  const httpStatusCode = httpStatusOf(error);
  const cause: IamFailure = {
    name,
    operation,
    attempts,
    ...(httpStatusCode === undefined ? {} : { httpStatusCode }),
    ...(typeof requestId === "string" ? { requestId } : {}),
  };
  switch (name) {
    case "MalformedPolicyDocument":
    case "MalformedPolicyDocumentException":
      return new UpstreamUnavailableError(
        `IAM refused the policy document for role ${roleName} as malformed`,
        {
          cause,
        },
      );
    case "LimitExceeded":
    case "LimitExceededException":
      return new UpstreamUnavailableError(`IAM inline policy limits of role ${roleName} are exceeded`, {
        cause,
      });
    case "AccessDenied":
    case "AccessDeniedException":
      return new UpstreamUnavailableError(`jitv may not call IAM ${operation} on role ${roleName}`, {
        cause,
      });
    default:
      return new UpstreamUnavailableError(
        isRetryable(error)
          ? `IAM ${operation} on role ${roleName} kept failing after ${attempts} attempts`
          : `IAM ${operation} on role ${roleName} failed`,
        { cause },
      );
  }
}
