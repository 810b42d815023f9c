import {
  DescribeSecretCommand,
  type DescribeSecretCommandOutput,
  GetRandomPasswordCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import * as z from "zod";
import { InvalidRequestError, isNamed } from "../domain/errors.js";

/** The four steps Secrets Manager invokes a rotation Lambda with, in order. */
export const ROTATION_STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"] as const;

/** One step of the rotation protocol. */
export type RotationStep = (typeof ROTATION_STEPS)[number];

/** What Secrets Manager sends a rotation Lambda for each step. */
export interface RotationEvent {
  /** The secret's ARN. */
  readonly SecretId: string;
  /** The id of the version being rotated to (`AWSPENDING`). */
  readonly ClientRequestToken: string;
  readonly Step: RotationStep;
  /** Sent when the function rotates with an assumed role or across accounts; passed on when writing. */
  readonly RotationToken?: string;
}

/**
 * What a step did, for logs. `already-current` means the version is already `AWSCURRENT`, so the
 * step had nothing left to do (a retried or late invocation).
 */
export type RotationOutcome =
  | "created"
  | "already-created"
  | "nothing-to-set"
  | "tested"
  | "finished"
  | "already-current";

/** Options of {@link RandomSecretRotation}. */
export interface RandomSecretRotationProps {
  readonly client: SecretsManagerClient;
  /**
   * Length of each new value.
   * @default 32
   */
  readonly passwordLength?: number;
}

/**
 * Secrets Manager invoked the function in a way the protocol does not allow: rotation disabled,
 * a token that is not a pending version of the secret, a malformed event, or a pending value that
 * fails its test. The message names the secret and version, never a value.
 */
export class RotationRefusedError extends InvalidRequestError {}

/**
 * Characters left out of generated values: quotes, backslash, slash, `@` and space break the
 * connection strings, shell commands and URLs consumers commonly put secrets in.
 */
export const EXCLUDED_CHARACTERS = "\"\\'/@ ";

const AWSCURRENT = "AWSCURRENT";
const AWSPENDING = "AWSPENDING";

const rotationEventSchema = z.object({
  SecretId: z.string().min(1),
  ClientRequestToken: z.string().min(1),
  Step: z.enum(ROTATION_STEPS),
  RotationToken: z.string().min(1).optional(),
});

/**
 * Validates a rotation Lambda's event.
 * @throws RotationRefusedError naming the missing or invalid fields (never their values)
 */
export function parseRotationEvent(event: unknown): RotationEvent {
  const result = rotationEventSchema.safeParse(event);
  if (!result.success) {
    const fields = [...new Set(result.error.issues.map((issue) => issue.path.join(".") || "(event)"))];
    throw new RotationRefusedError(`not a Secrets Manager rotation event: invalid ${fields.join(", ")}`);
  }
  const { RotationToken, ...rest } = result.data;
  return RotationToken === undefined ? rest : { ...rest, RotationToken };
}

/**
 * The rotation logic of a generic random secret (a value only its consumers read, such as an API
 * key shared between two services), implementing Secrets Manager's four-step protocol ("Rotation
 * by Lambda function"). Every step is idempotent, since Secrets Manager retries failed steps:
 *
 * - `createSecret`: unless the pending version already has a value, puts a new random value
 *   (`GetRandomPassword`) as that version, staged `AWSPENDING`.
 * - `setSecret`: nothing. A generic secret has no service to update; consumers read the secret
 *   and pick up the new value once it is current.
 * - `testSecret`: checks the pending value can be read and is not empty.
 * - `finishSecret`: moves `AWSCURRENT` to the pending version (Secrets Manager moves
 *   `AWSPREVIOUS` to the old one) and removes `AWSPENDING` from it.
 *
 * Before any step, `DescribeSecret` must show rotation enabled and the token as a version of the
 * secret staged `AWSPENDING`; a token already `AWSCURRENT` means the rotation is done. Secret
 * values are never logged, returned or put into error messages.
 *
 * @example
 * const rotation = new RandomSecretRotation({ client: new SecretsManagerClient({}) });
 * await rotation.handle({ SecretId: arn, ClientRequestToken: token, Step: "createSecret" });
 */
export class RandomSecretRotation {
  readonly #client: SecretsManagerClient;
  readonly #passwordLength: number;

  constructor(props: RandomSecretRotationProps) {
    this.#client = props.client;
    this.#passwordLength = props.passwordLength ?? 32;
  }

  /**
   * Runs one step of a rotation.
   * @param event the Lambda event, validated here
   * @throws RotationRefusedError when the event or the secret's state does not allow the step
   * @throws the Secrets Manager client's errors, unchanged, so Secrets Manager retries the step
   */
  async handle(event: unknown): Promise<RotationOutcome> {
    const { SecretId, ClientRequestToken: token, Step, RotationToken } = parseRotationEvent(event);
    const metadata = await this.#client.send(new DescribeSecretCommand({ SecretId }));
    if (metadata.RotationEnabled !== true) {
      throw new RotationRefusedError(`rotation is not enabled on secret ${SecretId}`);
    }
    const stages = stagesOf(metadata, token);
    if (stages === undefined) {
      throw new RotationRefusedError(`version ${token} is not a version of secret ${SecretId}`);
    }
    if (stages.includes(AWSCURRENT)) return "already-current";
    if (!stages.includes(AWSPENDING)) {
      throw new RotationRefusedError(`version ${token} of secret ${SecretId} is not staged ${AWSPENDING}`);
    }

    switch (Step) {
      case "createSecret":
        return this.#createSecret(SecretId, token, RotationToken);
      case "setSecret":
        return "nothing-to-set";
      case "testSecret":
        return this.#testSecret(SecretId, token);
      case "finishSecret":
        return this.#finishSecret(SecretId, token, metadata);
    }
  }

  async #createSecret(secretId: string, token: string, rotationToken?: string): Promise<RotationOutcome> {
    try {
      await this.#client.send(
        new GetSecretValueCommand({ SecretId: secretId, VersionId: token, VersionStage: AWSPENDING }),
      );
      return "already-created";
    } catch (error) {
      if (!isNamed(error, "ResourceNotFoundException")) throw error;
    }
    const { RandomPassword } = await this.#client.send(
      new GetRandomPasswordCommand({
        PasswordLength: this.#passwordLength,
        ExcludeCharacters: EXCLUDED_CHARACTERS,
      }),
    );
    if (!RandomPassword) throw new Error("Secrets Manager returned no random password");
    await this.#client.send(
      new PutSecretValueCommand({
        SecretId: secretId,
        ClientRequestToken: token,
        SecretString: RandomPassword,
        VersionStages: [AWSPENDING],
        ...(rotationToken === undefined ? {} : { RotationToken: rotationToken }),
      }),
    );
    return "created";
  }

  async #testSecret(secretId: string, token: string): Promise<RotationOutcome> {
    const pending = await this.#client.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionId: token, VersionStage: AWSPENDING }),
    );
    const hasValue =
      (typeof pending.SecretString === "string" && pending.SecretString.length > 0) ||
      (pending.SecretBinary !== undefined && pending.SecretBinary.length > 0);
    if (!hasValue) {
      throw new RotationRefusedError(`the pending version ${token} of secret ${secretId} has no value`);
    }
    return "tested";
  }

  async #finishSecret(
    secretId: string,
    token: string,
    metadata: DescribeSecretCommandOutput,
  ): Promise<RotationOutcome> {
    const current = Object.entries(metadata.VersionIdsToStages ?? {}).find(([, stages]) =>
      stages.includes(AWSCURRENT),
    )?.[0];
    if (current === token) return "already-current";
    await this.#client.send(
      new UpdateSecretVersionStageCommand({
        SecretId: secretId,
        VersionStage: AWSCURRENT,
        MoveToVersionId: token,
        ...(current === undefined ? {} : { RemoveFromVersionId: current }),
      }),
    );
    // Leaves no AWSPENDING label behind, as AWS's own templates do.
    await this.#client.send(
      new UpdateSecretVersionStageCommand({
        SecretId: secretId,
        VersionStage: AWSPENDING,
        RemoveFromVersionId: token,
      }),
    );
    return "finished";
  }
}

function stagesOf(metadata: DescribeSecretCommandOutput, token: string): readonly string[] | undefined {
  const versions = metadata.VersionIdsToStages ?? {};
  return Object.hasOwn(versions, token) ? (versions[token] ?? []) : undefined;
}
