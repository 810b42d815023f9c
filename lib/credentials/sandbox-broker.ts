import { randomBytes, randomInt } from "node:crypto";
import type { AssumeRoleRequest, IssuedCredentials } from "../domain/sts.js";
import { assertStsLimits } from "../domain/sts-request.js";
import type { CredentialBroker } from "./broker.js";

/** Every sandbox `AccessKeyId` starts with this (AWS access key ids start with `AKIA`/`ASIA`). */
export const SANDBOX_ACCESS_KEY_PREFIX = "JITVSANDBOX";
/** Every sandbox `SecretAccessKey` starts with this. */
export const SANDBOX_SECRET_KEY_PREFIX = "jitv-sandbox-not-aws-";
/** Every sandbox `SessionToken` starts with this, followed by base64url JSON `{taskId, expiration}`. */
export const SANDBOX_SESSION_TOKEN_PREFIX = "jitv-sandbox-session:";

const ACCESS_KEY_ID_LENGTH = 20;
const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** What a sandbox session token says: the task it was issued for and when it expires. */
export interface SandboxSession {
  readonly taskId: string;
  /** RFC 3339. */
  readonly expiration: string;
}

/** Options of {@link SandboxBroker}. */
export interface SandboxBrokerProps {
  /** Clock for `Expiration`. @default () => new Date() */
  readonly now?: () => Date;
}

/**
 * Adapter: the {@link CredentialBroker} of the local sandbox. It applies the same STS limit
 * checks as `StsBroker`, records exactly the request it would have sent to STS, and returns
 * clearly-marked sandbox credentials.
 *
 * The credentials are NOT AWS credentials: `AccessKeyId` starts with `JITVSANDBOX`,
 * `SecretAccessKey` with `jitv-sandbox-not-aws-`, `SessionToken` with
 * `jitv-sandbox-session:`. AWS refuses them; the sandbox's simulate route understands them.
 *
 * @example
 * const broker = new SandboxBroker();
 * const credentials = await broker.assumeRole(request);
 * broker.lastRequestFor(request.roleSessionName); // → the request, as STS would have seen it
 */
export class SandboxBroker implements CredentialBroker {
  /** Every accepted request, oldest first, as it would have been sent to STS. */
  readonly requests: AssumeRoleRequest[] = [];
  readonly #now: () => Date;

  constructor(props: SandboxBrokerProps = {}) {
    this.#now = props.now ?? (() => new Date());
  }

  async assumeRole(request: AssumeRoleRequest): Promise<IssuedCredentials> {
    assertStsLimits(request);
    this.requests.push(
      Object.freeze({
        ...request,
        tags: Object.freeze(request.tags.map((tag) => Object.freeze({ ...tag }))),
      }),
    );
    const expiration = new Date(this.#now().getTime() + request.durationSeconds * 1000).toISOString();
    const session: SandboxSession = { taskId: request.roleSessionName, expiration };
    return {
      AccessKeyId:
        SANDBOX_ACCESS_KEY_PREFIX +
        randomAlphanumeric(ACCESS_KEY_ID_LENGTH - SANDBOX_ACCESS_KEY_PREFIX.length),
      SecretAccessKey: SANDBOX_SECRET_KEY_PREFIX + randomBytes(24).toString("base64url"),
      SessionToken: SANDBOX_SESSION_TOKEN_PREFIX + Buffer.from(JSON.stringify(session)).toString("base64url"),
      Expiration: expiration,
    };
  }

  /** The latest recorded request for a role session name (= task id), if any. */
  lastRequestFor(sessionName: string): AssumeRoleRequest | undefined {
    return this.requests.findLast((request) => request.roleSessionName === sessionName);
  }
}

/**
 * Reads a sandbox session token back, for the sandbox's simulate route.
 * @returns `undefined` for anything that is not a well-formed sandbox session token
 */
export function parseSandboxSessionToken(token: string): SandboxSession | undefined {
  if (!token.startsWith(SANDBOX_SESSION_TOKEN_PREFIX)) return undefined;
  try {
    const decoded: unknown = JSON.parse(
      Buffer.from(token.slice(SANDBOX_SESSION_TOKEN_PREFIX.length), "base64url").toString("utf8"),
    );
    if (typeof decoded !== "object" || decoded === null) return undefined;
    const { taskId, expiration } = decoded as Record<string, unknown>;
    if (typeof taskId !== "string" || typeof expiration !== "string") return undefined;
    return { taskId, expiration };
  } catch {
    return undefined;
  }
}

function randomAlphanumeric(length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return out;
}
