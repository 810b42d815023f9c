import {
  DescribeSecretCommand,
  GetRandomPasswordCommand,
  GetSecretValueCommand,
  InternalServiceError,
  PutSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { beforeEach, describe, expect, it } from "vitest";
import { InvalidRequestError } from "../../../lib/domain/errors.js";
import {
  RandomSecretRotation,
  type RotationEvent,
  RotationRefusedError,
  type RotationStep,
} from "../../../lib/secrets/rotation-steps.js";

const secretsManager = mockClient(SecretsManagerClient);
const ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-key-AbCdEf";
const CURRENT = "11111111-1111-4111-8111-111111111111";
const TOKEN = "22222222-2222-4222-8222-222222222222";
const VALUE = "n3w-v4lue-that-must-never-be-logged";
const OLD_VALUE = "old-value-that-must-never-be-logged";
const ROTATION_TOKEN = "rotation-token-sensitive";
const STEPS: RotationStep[] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

function event(Step: RotationStep, extra: Partial<RotationEvent> = {}): RotationEvent {
  return { SecretId: ARN, ClientRequestToken: TOKEN, Step, ...extra };
}

/** `rotationEnabled: null` leaves `RotationEnabled` out, as for a secret never set up for rotation. */
function described(versions: Record<string, string[]>, rotationEnabled: boolean | null = true) {
  return {
    ARN,
    Name: "api-key",
    ...(rotationEnabled === null ? {} : { RotationEnabled: rotationEnabled }),
    VersionIdsToStages: versions,
  };
}

/** The state during a rotation: the old version current, the token pending. */
function rotating() {
  secretsManager
    .on(DescribeSecretCommand)
    .resolves(described({ [CURRENT]: ["AWSCURRENT"], [TOKEN]: ["AWSPENDING"] }));
}

function notFound() {
  return new ResourceNotFoundException({
    $metadata: { httpStatusCode: 400 },
    message: "Secrets Manager can't find the specified secret value for VersionId",
  });
}

function rotation(passwordLength?: number) {
  return new RandomSecretRotation({
    client: new SecretsManagerClient({ region: "us-east-1" }),
    ...(passwordLength === undefined ? {} : { passwordLength }),
  });
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected a rejection");
}

/** Every command sent, in order, by name. */
function sentCommands(): string[] {
  return secretsManager.calls().map((call) => call.args[0].constructor.name);
}

beforeEach(() => {
  secretsManager.reset();
});

describe("RandomSecretRotation", () => {
  describe("createSecret", () => {
    it("puts a new random value as the pending version when it has none", async () => {
      rotating();
      secretsManager.on(GetSecretValueCommand).rejects(notFound());
      secretsManager.on(GetRandomPasswordCommand).resolves({ RandomPassword: VALUE });
      secretsManager
        .on(PutSecretValueCommand)
        .resolves({ ARN, VersionId: TOKEN, VersionStages: ["AWSPENDING"] });

      const outcome = await rotation().handle(event("createSecret"));

      expect(outcome).toBe("created");
      expect(sentCommands()).toEqual([
        "DescribeSecretCommand",
        "GetSecretValueCommand",
        "GetRandomPasswordCommand",
        "PutSecretValueCommand",
      ]);
      expect(secretsManager.commandCalls(DescribeSecretCommand)[0]?.args[0].input).toStrictEqual({
        SecretId: ARN,
      });
      expect(secretsManager.commandCalls(GetSecretValueCommand)[0]?.args[0].input).toStrictEqual({
        SecretId: ARN,
        VersionId: TOKEN,
        VersionStage: "AWSPENDING",
      });
      expect(secretsManager).toHaveReceivedCommandWith(GetRandomPasswordCommand, {
        PasswordLength: 32,
        ExcludeCharacters: "\"\\'/@ ",
      });
      expect(secretsManager.commandCalls(GetRandomPasswordCommand)[0]?.args[0].input).toStrictEqual({
        PasswordLength: 32,
        ExcludeCharacters: "\"\\'/@ ",
      });
      expect(secretsManager.commandCalls(PutSecretValueCommand)[0]?.args[0].input).toStrictEqual({
        SecretId: ARN,
        ClientRequestToken: TOKEN,
        SecretString: VALUE,
        VersionStages: ["AWSPENDING"],
      });
    });

    it("uses the configured password length and passes a RotationToken on", async () => {
      rotating();
      secretsManager.on(GetSecretValueCommand).rejects(notFound());
      secretsManager.on(GetRandomPasswordCommand).resolves({ RandomPassword: VALUE });

      await rotation(64).handle(event("createSecret", { RotationToken: ROTATION_TOKEN }));

      expect(secretsManager.commandCalls(GetRandomPasswordCommand)[0]?.args[0].input).toStrictEqual({
        PasswordLength: 64,
        ExcludeCharacters: "\"\\'/@ ",
      });
      expect(secretsManager.commandCalls(PutSecretValueCommand)[0]?.args[0].input).toStrictEqual({
        SecretId: ARN,
        ClientRequestToken: TOKEN,
        SecretString: VALUE,
        VersionStages: ["AWSPENDING"],
        RotationToken: ROTATION_TOKEN,
      });
    });

    it("does nothing when the pending version already has a value (a retried step)", async () => {
      rotating();
      secretsManager.on(GetSecretValueCommand).resolves({ ARN, VersionId: TOKEN, SecretString: VALUE });

      const outcome = await rotation().handle(event("createSecret"));

      expect(outcome).toBe("already-created");
      expect(sentCommands()).toEqual(["DescribeSecretCommand", "GetSecretValueCommand"]);
      expect(secretsManager).not.toHaveReceivedCommand(GetRandomPasswordCommand);
      expect(secretsManager).not.toHaveReceivedCommand(PutSecretValueCommand);
    });

    it("puts nothing when reading the pending version fails for another reason", async () => {
      rotating();
      const failure = new InternalServiceError({ $metadata: { httpStatusCode: 500 }, message: "internal" });
      secretsManager.on(GetSecretValueCommand).rejects(failure);

      await expect(rotation().handle(event("createSecret"))).rejects.toBe(failure);
      expect(secretsManager).not.toHaveReceivedCommand(GetRandomPasswordCommand);
      expect(secretsManager).not.toHaveReceivedCommand(PutSecretValueCommand);
    });
  });

  describe("setSecret", () => {
    it("has nothing to set for a generic secret and reads no value", async () => {
      rotating();

      const outcome = await rotation().handle(event("setSecret"));

      expect(outcome).toBe("nothing-to-set");
      expect(sentCommands()).toEqual(["DescribeSecretCommand"]);
    });
  });

  describe("testSecret", () => {
    it("reads the pending version and accepts a non-empty value", async () => {
      rotating();
      secretsManager.on(GetSecretValueCommand).resolves({ ARN, VersionId: TOKEN, SecretString: VALUE });

      const outcome = await rotation().handle(event("testSecret"));

      expect(outcome).toBe("tested");
      expect(sentCommands()).toEqual(["DescribeSecretCommand", "GetSecretValueCommand"]);
      expect(secretsManager.commandCalls(GetSecretValueCommand)[0]?.args[0].input).toStrictEqual({
        SecretId: ARN,
        VersionId: TOKEN,
        VersionStage: "AWSPENDING",
      });
    });

    it.each([
      ["an empty string", { SecretString: "" }],
      ["no value at all", {}],
    ])("refuses a pending version with %s", async (_what, value) => {
      rotating();
      secretsManager.on(GetSecretValueCommand).resolves({ ARN, VersionId: TOKEN, ...value });

      const err = await rejection(rotation().handle(event("testSecret")));

      expect(err).toBeInstanceOf(RotationRefusedError);
      expect(err.message).toBe(`the pending version ${TOKEN} of secret ${ARN} has no value`);
    });

    it("fails when the pending version cannot be read", async () => {
      rotating();
      secretsManager.on(GetSecretValueCommand).rejects(notFound());

      await expect(rotation().handle(event("testSecret"))).rejects.toMatchObject({
        name: "ResourceNotFoundException",
      });
    });
  });

  describe("finishSecret", () => {
    it("moves AWSCURRENT from the current version to the token, then removes AWSPENDING", async () => {
      rotating();

      const outcome = await rotation().handle(event("finishSecret"));

      expect(outcome).toBe("finished");
      expect(sentCommands()).toEqual([
        "DescribeSecretCommand",
        "UpdateSecretVersionStageCommand",
        "UpdateSecretVersionStageCommand",
      ]);
      const updates = secretsManager
        .commandCalls(UpdateSecretVersionStageCommand)
        .map((c) => c.args[0].input);
      expect(updates).toStrictEqual([
        { SecretId: ARN, VersionStage: "AWSCURRENT", MoveToVersionId: TOKEN, RemoveFromVersionId: CURRENT },
        { SecretId: ARN, VersionStage: "AWSPENDING", RemoveFromVersionId: TOKEN },
      ]);
      expect(secretsManager).not.toHaveReceivedCommand(GetSecretValueCommand);
    });

    it("moves AWSCURRENT without a RemoveFromVersionId when no version is current", async () => {
      secretsManager.on(DescribeSecretCommand).resolves(described({ [TOKEN]: ["AWSPENDING"] }));

      await rotation().handle(event("finishSecret"));

      expect(secretsManager.commandCalls(UpdateSecretVersionStageCommand)[0]?.args[0].input).toStrictEqual({
        SecretId: ARN,
        VersionStage: "AWSCURRENT",
        MoveToVersionId: TOKEN,
      });
    });
  });

  it.each(STEPS)("%s does nothing once the token is already AWSCURRENT", async (step) => {
    secretsManager
      .on(DescribeSecretCommand)
      .resolves(described({ [CURRENT]: ["AWSPREVIOUS"], [TOKEN]: ["AWSCURRENT", "AWSPENDING"] }));

    const outcome = await rotation().handle(event(step));

    expect(outcome).toBe("already-current");
    expect(sentCommands()).toEqual(["DescribeSecretCommand"]);
  });

  describe("refusals", () => {
    it.each([
      ["RotationEnabled false", false],
      ["RotationEnabled absent", null],
    ])("refuses every step when rotation is not enabled (%s)", async (_what, enabled) => {
      secretsManager
        .on(DescribeSecretCommand)
        .resolves(described({ [CURRENT]: ["AWSCURRENT"], [TOKEN]: ["AWSPENDING"] }, enabled));

      for (const step of STEPS) {
        const err = await rejection(rotation().handle(event(step)));
        expect(err).toBeInstanceOf(RotationRefusedError);
        expect(err.message).toBe(`rotation is not enabled on secret ${ARN}`);
      }
      expect(sentCommands().every((name) => name === "DescribeSecretCommand")).toBe(true);
    });

    it.each(STEPS)("%s refuses a token that is not a version of the secret", async (step) => {
      secretsManager.on(DescribeSecretCommand).resolves(described({ [CURRENT]: ["AWSCURRENT"] }));

      const err = await rejection(rotation().handle(event(step)));

      expect(err).toBeInstanceOf(RotationRefusedError);
      expect(err).toBeInstanceOf(InvalidRequestError);
      expect(err.message).toBe(`version ${TOKEN} is not a version of secret ${ARN}`);
      expect(sentCommands()).toEqual(["DescribeSecretCommand"]);
    });

    it("does not mistake an inherited property name for a version", async () => {
      secretsManager.on(DescribeSecretCommand).resolves(described({ [CURRENT]: ["AWSCURRENT"] }));

      await expect(
        rotation().handle({ SecretId: ARN, ClientRequestToken: "constructor", Step: "finishSecret" }),
      ).rejects.toBeInstanceOf(RotationRefusedError);
      expect(secretsManager).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
    });

    it("refuses a version that is neither AWSCURRENT nor AWSPENDING", async () => {
      secretsManager
        .on(DescribeSecretCommand)
        .resolves(described({ [CURRENT]: ["AWSCURRENT"], [TOKEN]: ["AWSPREVIOUS"] }));

      const err = await rejection(rotation().handle(event("finishSecret")));

      expect(err).toBeInstanceOf(RotationRefusedError);
      expect(err.message).toBe(`version ${TOKEN} of secret ${ARN} is not staged AWSPENDING`);
      expect(secretsManager).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
    });

    it.each([
      ["an unknown step", { SecretId: ARN, ClientRequestToken: TOKEN, Step: "deleteSecret" }, "Step"],
      ["a missing token", { SecretId: ARN, Step: "createSecret" }, "ClientRequestToken"],
      ["an empty secret id", { SecretId: "", ClientRequestToken: TOKEN, Step: "createSecret" }, "SecretId"],
      ["not an object", "createSecret", "(event)"],
    ])("refuses %s before calling Secrets Manager", async (_what, raw, field) => {
      const err = await rejection(rotation().handle(raw));

      expect(err).toBeInstanceOf(RotationRefusedError);
      expect(err.message).toBe(`not a Secrets Manager rotation event: invalid ${field}`);
      expect(secretsManager.calls()).toHaveLength(0);
    });
  });

  it("never puts a secret value or rotation token into what it throws or returns", async () => {
    // Every value this run sees: the old and new values and the rotation token.
    const secrets = [VALUE, OLD_VALUE, ROTATION_TOKEN];
    const outcomes: unknown[] = [];
    const errors: Error[] = [];

    rotating();
    secretsManager
      .on(GetSecretValueCommand, { VersionStage: "AWSCURRENT" })
      .resolves({ SecretString: OLD_VALUE })
      .on(GetSecretValueCommand, { VersionStage: "AWSPENDING" })
      .resolves({ SecretString: VALUE });
    secretsManager.on(GetRandomPasswordCommand).resolves({ RandomPassword: VALUE });
    for (const step of STEPS)
      outcomes.push(await rotation().handle(event(step, { RotationToken: ROTATION_TOKEN })));
    // A bad RotationToken is named by field, not echoed.
    errors.push(
      await rejection(rotation().handle({ ...event("createSecret"), RotationToken: 42, Step: VALUE })),
    );
    secretsManager.on(GetSecretValueCommand).resolves({ SecretString: "" });
    errors.push(await rejection(rotation().handle(event("testSecret"))));

    expect(outcomes).toEqual(["already-created", "nothing-to-set", "tested", "finished"]);
    expect(errors).toHaveLength(2);
    const thrown = errors
      .map((e) => `${e.name} ${e.message} ${JSON.stringify(e)} ${String(e.cause)}`)
      .join("\n");
    for (const secret of secrets) {
      expect(JSON.stringify(outcomes)).not.toContain(secret);
      expect(thrown).not.toContain(secret);
    }
  });
});
