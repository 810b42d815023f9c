import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { TaskLifecycle } from "../app/lifecycle-steps.js";
import type { Task } from "../domain/task.js";
import { DynamoOverdueTasks } from "../tasks/dynamo-overdue-tasks.js";
import {
  LIFECYCLE_ASL_PATH,
  LIFECYCLE_STATES,
  type LifecycleSignal,
  type LifecycleStarter,
  lifecycleInput,
  type TaskTokenSender,
} from "../tasks/lifecycle.js";

// aws-local-stepfunctions 3 uses Promise.withResolvers, which Node 20 lacks. Sandbox only:
// the Lambdas never load this module.
type Resolvers = { promise: Promise<unknown>; resolve: (v: unknown) => void; reject: (e: unknown) => void };
const P = Promise as unknown as { withResolvers?: () => Resolvers };
if (!P.withResolvers) {
  P.withResolvers = () => {
    let resolve!: (v: unknown) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

/** The ASL with each `${…FunctionArn}` replaced by a sandbox ARN (the local engine validates ARNs). */
export function sandboxDefinition(): unknown {
  let text = readFileSync(LIFECYCLE_ASL_PATH, "utf8");
  for (const { substitution } of Object.values(LIFECYCLE_STATES)) {
    text = text.replaceAll(
      `\${${substitution}}`,
      `arn:aws:lambda:us-east-1:000000000000:function:jitv-sandbox-${substitution}`,
    );
  }
  return JSON.parse(text);
}

/** The states that wait for a task token (`.waitForTaskToken` in the ASL). */
const WAITING_STATES = new Set(["WaitForApproval", "WaitForTaskEnd"]);

type StateMachineCtor = typeof import("aws-local-stepfunctions").StateMachine;
type Execution = { abort: () => void; result: Promise<unknown> };

/**
 * Runs the lifecycle state machine in-process with `aws-local-stepfunctions`, from the same
 * ASL file as the deployed Step Functions state machine. Each Lambda state runs the same
 * {@link TaskLifecycle} step the deployed function runs. Also the sandbox's
 * {@link TaskTokenSender}: a task token resolves the waiting state, like `SendTaskSuccess`.
 */
export class LocalLifecycleRunner implements LifecycleStarter, TaskTokenSender {
  readonly #steps: () => TaskLifecycle;
  readonly #now: () => Date;
  readonly #onError: (taskId: string, error: unknown) => void;
  readonly #timeoutSeconds: number | undefined;
  readonly #executions = new Map<string, Execution>();
  readonly #waiting = new Map<string, (output: LifecycleSignal) => void>();
  #machine?: InstanceType<StateMachineCtor>;

  constructor(props: {
    steps: () => TaskLifecycle;
    now?: () => Date;
    onError?: (taskId: string, error: unknown) => void;
    /**
     * Test seam: wait this many seconds instead of until the task's deadline, so a test can
     * watch the state machine's own expiry path without waiting 15 minutes. Everything else
     * (the ASL, the engine's States.Timeout, the steps) is unchanged.
     */
    timeoutSeconds?: number;
  }) {
    this.#steps = props.steps;
    this.#now = props.now ?? (() => new Date());
    this.#onError = props.onError ?? (() => undefined);
    this.#timeoutSeconds = props.timeoutSeconds;
  }

  async start(task: Pick<Task, "taskId" | "expiresAt" | "status">): Promise<void> {
    if (this.#executions.has(task.taskId)) return; // execution name = task id
    // Claim the name before any await, so concurrent starts of one task run one execution.
    this.#executions.set(task.taskId, { abort: () => undefined, result: Promise.resolve() });
    const machine = await this.#stateMachine().catch((error: unknown) => {
      this.#executions.delete(task.taskId);
      throw error;
    });
    const token = randomUUID();
    const steps = this.#steps();
    const handlers: Record<string, (input: unknown) => Promise<never>> = {};
    for (const [state, { step }] of Object.entries(LIFECYCLE_STATES)) {
      const run = steps[step].bind(steps) as (payload: unknown) => Promise<void>;
      const payload = (input: unknown) => (input as { Payload: { taskId: string } }).Payload;
      handlers[state] = WAITING_STATES.has(state)
        ? // A waitForTaskToken state: register the token, then wait for sendSuccess (or the timeout).
          async (input) => {
            const signalled = new Promise<never>((resolve) => this.#waiting.set(token, resolve as never));
            await run({ taskId: payload(input).taskId, taskToken: token });
            return signalled;
          }
        : async (input) => {
            await run(payload(input));
            return {} as never;
          };
    }
    const input = lifecycleInput(task, this.#now());
    const timeoutSeconds = this.#timeoutSeconds ?? input.timeoutSeconds;
    const approvalTimeoutSeconds = this.#timeoutSeconds ?? input.approvalTimeoutSeconds;
    const execution = machine.run({ ...input, timeoutSeconds, approvalTimeoutSeconds } as never, {
      context: { Task: { Token: token } } as never,
      overrides: {
        taskResourceLocalHandlers: handlers,
        // Same retry counts as in AWS, without the multi-second pauses.
        retryIntervalOverrides: Object.fromEntries(Object.keys(LIFECYCLE_STATES).map((state) => [state, 20])),
      },
      noThrowOnAbort: true,
    });
    const result = execution.result.catch((error: unknown) => this.#onError(task.taskId, error));
    this.#executions.set(task.taskId, { abort: execution.abort, result });
    void result.finally(() => this.#waiting.delete(token));
  }

  async sendSuccess(taskToken: string, output: LifecycleSignal): Promise<void> {
    const resolve = this.#waiting.get(taskToken);
    this.#waiting.delete(taskToken);
    resolve?.(output); // an unknown or spent token is ignored, like TaskTimedOut in AWS
  }

  /** The running or finished execution of a task (tests and the sandbox's shutdown). */
  execution(taskId: string): Promise<unknown> | undefined {
    return this.#executions.get(taskId)?.result;
  }

  /** Stops one execution, as if it had been deleted or failed in AWS (the TTL backstop remains). */
  abort(taskId: string): void {
    this.#executions.get(taskId)?.abort();
  }

  close(): void {
    for (const execution of this.#executions.values()) execution.abort();
    this.#waiting.clear();
  }

  async #stateMachine() {
    if (!this.#machine) {
      const { StateMachine } = await import("aws-local-stepfunctions");
      this.#machine = new StateMachine(sandboxDefinition() as never, {
        validationOptions: { checkArn: true },
      });
    }
    return this.#machine;
  }
}

/**
 * Resumes lifecycles when the sandbox starts on kept data (`--data`, `--dynamodb-endpoint`): the
 * in-process executions died with the process that ran them. A task still before its deadline
 * gets its execution again (execution name = task id; its waiting state registers a new token).
 * Every other task not yet closed — ended while nothing ran, or past its deadline — goes through
 * the backstop at once (ended, revoked, secrets rotated, closed) instead of whenever DynamoDB
 * Local's TTL sweep reaches its lease. A failure is reported per task; the TTL lease remains.
 * @returns the ids of the tasks whose execution was started again, and of those the backstop ended
 */
export async function resumeLifecycles(props: {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  readonly runner: LifecycleStarter;
  readonly lifecycle: Pick<TaskLifecycle, "backstop">;
  readonly now?: () => Date;
  readonly onError: (taskId: string, error: unknown) => void;
}): Promise<{ restarted: string[]; backstopped: string[] }> {
  const now = (props.now ?? (() => new Date()))();
  const restarted: string[] = [];
  const backstopped: string[] = [];
  // The sweep's query, over all of the kept data's history.
  const unclosed = new DynamoOverdueTasks({
    client: props.doc,
    tableName: props.tableName,
    endedLookbackMs: Number.POSITIVE_INFINITY,
  });
  for (const task of await unclosed.unclosed(now)) {
    try {
      const live = task.status === "active" || task.status === "pending_approval";
      if (live && Date.parse(task.expiresAt) > now.getTime()) {
        await props.runner.start(task);
        restarted.push(task.taskId);
      } else {
        await props.lifecycle.backstop({ taskId: task.taskId });
        backstopped.push(task.taskId);
      }
    } catch (error) {
      props.onError(task.taskId, error);
    }
  }
  return { restarted, backstopped };
}
