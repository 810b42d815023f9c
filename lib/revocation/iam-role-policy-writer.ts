import {
  CreatePolicyVersionCommand,
  DeletePolicyVersionCommand,
  DeleteRolePolicyCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetRolePolicyCommand,
  type IAMClient,
  ListAttachedRolePoliciesCommand,
  ListPolicyVersionsCommand,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
} from "@aws-sdk/client-iam";
import {
  type AwsFailure,
  awsErrorName,
  awsFailure,
  isRetryableAwsError,
  type RetryAwsOptions,
  type RetryTimingProps,
  resolveRetryOptions,
  retryAws,
} from "../aws-retry.js";
import { InternalError, type JitvError, UpstreamUnavailableError } from "../domain/errors.js";
import { nonWhitespaceLength, OVERFLOW_POLICY_PATH } from "./policy.js";
import {
  INLINE_POLICY_QUOTA_CHARS,
  RoleNotFoundError,
  RolePolicyLimitError,
  type RolePolicyWriter,
} from "./revocation-store.js";

/** Options of {@link IamRolePolicyWriter}. */
export interface IamRolePolicyWriterProps extends RetryTimingProps {
  /**
   * The IAM client, or the client for each role (`RevokerIamClients.forRole`: the target
   * account's revoker role for a role in another account). Build them with `maxAttempts: 1`:
   * the writer retries itself, and the SDK's own retries would multiply with them.
   */
  readonly client: IAMClient | ((roleArn: string) => IAMClient);
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
}

/** IAM role ARN with an optional path; the role name is the last segment. */
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64})$/;

/** IAM's retryable failures beyond those every AWS service has. */
const IAM_RETRYABLE_ERRORS = [
  "ServiceFailure",
  "ServiceFailureException",
  // A concurrent modification of the same role: IAM asks the caller to retry.
  "ConcurrentModification",
  "ConcurrentModificationException",
];
const NO_SUCH_ENTITY = new Set(["NoSuchEntity", "NoSuchEntityException"]);

type Operation =
  | "GetRolePolicy"
  | "PutRolePolicy"
  | "DeleteRolePolicy"
  | "ListRolePolicies"
  | "ListAttachedRolePolicies"
  | "GetPolicy"
  | "GetPolicyVersion"
  | "ListPolicyVersions"
  | "CreatePolicyVersion"
  | "DeletePolicyVersion";

/**
 * The IAM actions this writer calls on a target role (`role/<rolePath>*`): what a role that
 * revokes must be allowed, in the vending stack and in each target account's revoker role.
 */
export const REVOCATION_ROLE_ACTIONS = [
  "iam:GetRolePolicy",
  "iam:PutRolePolicy",
  "iam:DeleteRolePolicy",
  "iam:ListRolePolicies",
  "iam:ListAttachedRolePolicies",
] as const;

/** The IAM actions this writer calls on a role's overflow policies (`policy/jitv/revocation/*`). */
export const OVERFLOW_POLICY_ACTIONS = [
  "iam:GetPolicy",
  "iam:GetPolicyVersion",
  "iam:ListPolicyVersions",
  "iam:CreatePolicyVersion",
  "iam:DeletePolicyVersion",
] as const;

/** Versions IAM keeps of one managed policy. */
const MAX_POLICY_VERSIONS = 5;

/** What is safe to keep of an IAM failure for operators' logs: no message text, no document. */
interface IamFailure extends AwsFailure {
  readonly operation: Operation;
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
  readonly #clientFor: (roleArn: string) => IAMClient;
  readonly #retry: RetryAwsOptions;

  constructor(props: IamRolePolicyWriterProps) {
    const { client } = props;
    this.#clientFor = typeof client === "function" ? client : () => client;
    this.#retry = {
      ...resolveRetryOptions(props, { maxAttempts: 5, baseDelayMs: 200, maxDelayMs: 3000 }),
      isRetryable,
    };
  }

  /**
   * Reads an inline policy of the role.
   * @returns the decoded JSON document, or `undefined` when the role has no policy of that name
   * @throws UpstreamUnavailableError when IAM fails (a missing role included)
   */
  async get(roleArn: string, policyName: string): Promise<string | undefined> {
    const RoleName = roleNameOf(roleArn);
    const output = await this.#call("GetRolePolicy", RoleName, () =>
      this.#clientFor(roleArn).send(new GetRolePolicyCommand({ RoleName, PolicyName: policyName })),
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
      this.#clientFor(roleArn).send(
        new PutRolePolicyCommand({ RoleName, PolicyName: policyName, PolicyDocument: document }),
      ),
    );
    if (output === NOT_FOUND) throw new RoleNotFoundError(`IAM role ${RoleName} does not exist`);
  }

  /**
   * IAM's inline quota minus every other inline policy of the role (`ListRolePolicies`, then
   * `GetRolePolicy` for each), so the revocation policy's budget is what the role really has free.
   * @throws RoleNotFoundError when the role does not exist
   * @throws UpstreamUnavailableError when IAM fails
   */
  async freeInlineChars(roleArn: string, policyName: string): Promise<number> {
    const RoleName = roleNameOf(roleArn);
    const names: string[] = [];
    let Marker: string | undefined;
    do {
      const page = await this.#call("ListRolePolicies", RoleName, () =>
        this.#clientFor(roleArn).send(
          new ListRolePoliciesCommand({ RoleName, ...(Marker ? { Marker } : {}) }),
        ),
      );
      if (page === NOT_FOUND) throw new RoleNotFoundError(`IAM role ${RoleName} does not exist`);
      names.push(...(page.PolicyNames ?? []));
      Marker = page.IsTruncated ? page.Marker : undefined;
    } while (Marker);
    let used = 0;
    for (const name of names.filter((n) => n !== policyName)) {
      used += nonWhitespaceLength((await this.get(roleArn, name)) ?? "");
    }
    return Math.max(0, INLINE_POLICY_QUOTA_CHARS - used);
  }

  /**
   * Deletes an inline policy of the role; a policy (or role) that does not exist is fine.
   * @throws UpstreamUnavailableError when IAM fails
   */
  async delete(roleArn: string, policyName: string): Promise<void> {
    const RoleName = roleNameOf(roleArn);
    await this.#call("DeleteRolePolicy", RoleName, () =>
      this.#clientFor(roleArn).send(new DeleteRolePolicyCommand({ RoleName, PolicyName: policyName })),
    );
  }

  /**
   * The role's overflow policies: its attached managed policies under {@link OVERFLOW_POLICY_PATH},
   * by name (the slot order).
   * @throws RoleNotFoundError when the role does not exist
   */
  async overflowPolicies(roleArn: string): Promise<readonly string[]> {
    const RoleName = roleNameOf(roleArn);
    const attached: { name: string; arn: string }[] = [];
    let Marker: string | undefined;
    do {
      const page = await this.#call("ListAttachedRolePolicies", RoleName, () =>
        this.#clientFor(roleArn).send(
          new ListAttachedRolePoliciesCommand({
            RoleName,
            PathPrefix: OVERFLOW_POLICY_PATH,
            ...(Marker ? { Marker } : {}),
          }),
        ),
      );
      if (page === NOT_FOUND) throw new RoleNotFoundError(`IAM role ${RoleName} does not exist`);
      for (const p of page.AttachedPolicies ?? []) {
        if (p.PolicyName && p.PolicyArn) attached.push({ name: p.PolicyName, arn: p.PolicyArn });
      }
      Marker = page.IsTruncated ? page.Marker : undefined;
    } while (Marker);
    return attached.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((p) => p.arn);
  }

  /** The default version's document of an overflow policy (decoded). */
  async getOverflow(roleArn: string, policyArn: string): Promise<string> {
    const RoleName = roleNameOf(roleArn);
    const client = this.#clientFor(roleArn);
    const policy = await this.#call("GetPolicy", RoleName, () =>
      client.send(new GetPolicyCommand({ PolicyArn: policyArn })),
    );
    const VersionId = policy === NOT_FOUND ? undefined : policy.Policy?.DefaultVersionId;
    if (VersionId === undefined)
      throw new UpstreamUnavailableError(`overflow policy of role ${RoleName} is missing`);
    const version = await this.#call("GetPolicyVersion", RoleName, () =>
      client.send(new GetPolicyVersionCommand({ PolicyArn: policyArn, VersionId })),
    );
    const encoded = version === NOT_FOUND ? undefined : version.PolicyVersion?.Document;
    if (encoded === undefined)
      throw new UpstreamUnavailableError(`overflow policy of role ${RoleName} is missing`);
    return decodeURIComponent(encoded);
  }

  /**
   * Makes `document` the default version of the overflow policy, first deleting its oldest
   * non-default version when IAM's five are used.
   * @throws RolePolicyLimitError when IAM refuses the document's size
   */
  async putOverflow(roleArn: string, policyArn: string, document: string): Promise<void> {
    const RoleName = roleNameOf(roleArn);
    const client = this.#clientFor(roleArn);
    const listed = await this.#call("ListPolicyVersions", RoleName, () =>
      client.send(new ListPolicyVersionsCommand({ PolicyArn: policyArn })),
    );
    const versions = listed === NOT_FOUND ? [] : (listed.Versions ?? []);
    if (versions.length >= MAX_POLICY_VERSIONS) {
      const oldest = versions
        .filter((v) => !v.IsDefaultVersion && v.VersionId)
        .sort((a, b) => (a.CreateDate?.getTime() ?? 0) - (b.CreateDate?.getTime() ?? 0))[0];
      if (oldest?.VersionId) {
        const VersionId = oldest.VersionId;
        await this.#call("DeletePolicyVersion", RoleName, () =>
          client.send(new DeletePolicyVersionCommand({ PolicyArn: policyArn, VersionId })),
        );
      }
    }
    const created = await this.#call("CreatePolicyVersion", RoleName, () =>
      client.send(
        new CreatePolicyVersionCommand({
          PolicyArn: policyArn,
          PolicyDocument: document,
          SetAsDefault: true,
        }),
      ),
    );
    if (created === NOT_FOUND)
      throw new UpstreamUnavailableError(`overflow policy of role ${RoleName} is missing`);
  }

  async #call<T>(
    operation: Operation,
    roleName: string,
    send: () => Promise<T>,
  ): Promise<T | typeof NOT_FOUND> {
    let attempts = 0;
    try {
      return await retryAws(async () => {
        attempts++;
        try {
          return await send();
        } catch (error) {
          // Checked before any retry: a missing role or policy is an answer, not a failure.
          if (NO_SUCH_ENTITY.has(awsErrorName(error))) return NOT_FOUND;
          throw error;
        }
      }, this.#retry);
    } catch (error) {
      throw toJitvError(error, operation, roleName, attempts);
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

function isRetryable(error: unknown): boolean {
  return isRetryableAwsError(error, IAM_RETRYABLE_ERRORS);
}

function toJitvError(error: unknown, operation: Operation, roleName: string, attempts: number): JitvError {
  const { name, ...failure } = awsFailure(error, attempts);
  const cause: IamFailure = { name, operation, ...failure };
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
      return new RolePolicyLimitError(`IAM inline policy limits of role ${roleName} are exceeded`, {
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
