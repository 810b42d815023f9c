/**
 * Records every AWS SDK call a Lambda handler makes, as the IAM action it needs: real clients
 * (DynamoDB Local) and clients stubbed by aws-sdk-client-mock alike. Calls are attributed to
 * the handler through AsyncLocalStorage, so work the handler leaves running in the background
 * is counted too, and the test's own setup calls are not.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";

/** The IAM service prefix of each SDK client's `serviceId`. */
const IAM_PREFIX: Readonly<Record<string, string>> = {
  DynamoDB: "dynamodb",
  STS: "sts",
  IAM: "iam",
  "Secrets Manager": "secretsmanager",
  SFN: "states",
  EventBridge: "events",
  "CloudWatch Logs": "logs",
};

/** One AWS call as IAM authorizes it. */
export interface AwsCall {
  /** The handler file that made it, e.g. `functions/revoke-task.ts`. */
  readonly entry: string;
  /** `service:Action`, e.g. `dynamodb:UpdateItem`. */
  readonly action: string;
  /** The command's input (for actions implied by it, e.g. `sts:TagSession`). */
  readonly input: Record<string, unknown>;
}

type Send = (this: Client, command: object, ...rest: unknown[]) => unknown;
interface Client {
  config: { serviceId: string };
}

/** What aws-sdk-client-mock's stubs expose of their calls (sinon's call records). */
interface ClientMock {
  calls(): ReadonlyArray<{ args: readonly unknown[]; thisValue: unknown }>;
}

/**
 * Starts recording. `mocks` are the test's aws-sdk-client-mock stubs: they replace `send`, so
 * their calls are read from each stub's history, counted between a handler's start and end.
 */
export function recordAwsCalls(...mocks: readonly ClientMock[]) {
  const current = new AsyncLocalStorage<string>();
  const calls: AwsCall[] = [];
  const record = (entry: string, client: Client, command: object) => {
    // A document-client command (GetCommand…) wraps the DynamoDB command IAM sees (GetItem…).
    const wire = (command as { clientCommand?: object }).clientCommand ?? command;
    const prefix = IAM_PREFIX[client.config.serviceId];
    if (!prefix) throw new Error(`aws-calls: no IAM prefix for service ${client.config.serviceId}`);
    calls.push({
      entry,
      action: `${prefix}:${wire.constructor.name.replace(/Command$/, "")}`,
      input: (wire as { input?: Record<string, unknown> }).input ?? {},
    });
  };
  // Every real SDK v3 client (and the DynamoDB document client) inherits `send` from Smithy's Client.
  const base = Object.getPrototypeOf(DynamoDBClient.prototype) as { send: Send };
  const original = base.send;
  base.send = function (this: Client, command: object, ...rest: unknown[]) {
    const entry = current.getStore();
    if (entry) record(entry, this, command);
    return original.call(this, command, ...rest);
  };
  return {
    /** The handler, recording the calls it makes as `entry`'s (callable only: no middy methods). */
    attribute<H extends (...args: never[]) => Promise<unknown>>(entry: string, handler: H): H {
      const attributed = async (...args: Parameters<H>) => {
        const before = mocks.map((mock) => mock.calls().length);
        try {
          return await current.run(entry, () => handler(...args));
        } finally {
          mocks.forEach((mock, i) => {
            for (const call of mock.calls().slice(before[i])) {
              record(entry, call.thisValue as Client, call.args[0] as object);
            }
          });
        }
      };
      return attributed as unknown as H;
    },
    calls: (): readonly AwsCall[] => calls,
    restore() {
      base.send = original;
    },
  };
}

/** The IAM action of each kind of item a DynamoDB transaction writes (it has no action of its own). */
const TRANSACT_ITEM_ACTIONS: Readonly<Record<string, string>> = {
  Put: "dynamodb:PutItem",
  Update: "dynamodb:UpdateItem",
  Delete: "dynamodb:DeleteItem",
  ConditionCheck: "dynamodb:ConditionCheckItem",
};

/**
 * The IAM actions a call needs: its own, except for DynamoDB transactions, which IAM authorizes
 * item by item; plus those implied by its input (session tags and source identity on
 * `AssumeRole`, the rotation function Secrets Manager invokes for `RotateSecret`).
 */
export function requiredActions(call: AwsCall): string[] {
  if (call.action === "dynamodb:TransactWriteItems") {
    const items = (call.input.TransactItems ?? []) as Record<string, unknown>[];
    return [
      ...new Set(
        items.flatMap((item) =>
          Object.keys(item).map((kind) => TRANSACT_ITEM_ACTIONS[kind] ?? `dynamodb:${kind}?`),
        ),
      ),
    ];
  }
  if (call.action === "dynamodb:TransactGetItems") return ["dynamodb:GetItem"];
  const actions = [call.action];
  if (call.action === "sts:AssumeRole") {
    if (Array.isArray(call.input.Tags) && call.input.Tags.length > 0) actions.push("sts:TagSession");
    if (call.input.SourceIdentity !== undefined) actions.push("sts:SetSourceIdentity");
  }
  if (call.action === "secretsmanager:RotateSecret") actions.push("lambda:InvokeFunction");
  return actions;
}
