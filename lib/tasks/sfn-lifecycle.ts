import { SendTaskSuccessCommand, type SFNClient, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { type RetryTimingProps, resolveRetryOptions, retryAws } from "../aws-retry.js";
import { UpstreamUnavailableError } from "../domain/errors.js";
import type { Task } from "../domain/task.js";
import {
  type LifecycleSignal,
  type LifecycleStarter,
  lifecycleInput,
  type TaskTokenSender,
} from "./lifecycle.js";

interface RetryOptions extends RetryTimingProps {
  readonly maxAttempts?: number;
  readonly baseDelayMs?: number;
}

/** The same retry policy as the other AWS adapters: throttling, timeouts, network errors, 429/5xx. */
function withRetries<T>(options: RetryOptions, call: () => Promise<T>): Promise<T> {
  return retryAws(call, resolveRetryOptions(options, { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 2000 }));
}

/**
 * Starts one Standard execution per task, named by the task id: Step Functions refuses a
 * second execution of the same name, so a retried start never doubles the lifecycle.
 */
export class SfnLifecycleStarter implements LifecycleStarter {
  readonly #client: SFNClient;
  readonly #stateMachineArn: string;
  readonly #now: () => Date;
  readonly #retry: RetryOptions;

  constructor(props: { client: SFNClient; stateMachineArn: string; now?: () => Date } & RetryOptions) {
    this.#client = props.client;
    this.#stateMachineArn = props.stateMachineArn;
    this.#now = props.now ?? (() => new Date());
    this.#retry = props;
  }

  async start(task: Pick<Task, "taskId" | "expiresAt" | "status">): Promise<void> {
    try {
      await withRetries(this.#retry, () =>
        this.#client.send(
          new StartExecutionCommand({
            stateMachineArn: this.#stateMachineArn,
            name: task.taskId,
            input: JSON.stringify(lifecycleInput(task, this.#now())),
          }),
        ),
      );
    } catch (err) {
      if (err instanceof Error && err.name === "ExecutionAlreadyExists") return;
      throw new UpstreamUnavailableError("could not start the task's lifecycle", { cause: errorName(err) });
    }
  }
}

/** Hands the outcome to the waiting execution; a token that is already spent is not an error. */
export class SfnTaskTokenSender implements TaskTokenSender {
  readonly #client: SFNClient;
  readonly #retry: RetryOptions;

  constructor(props: { client: SFNClient } & RetryOptions) {
    this.#client = props.client;
    this.#retry = props;
  }

  async sendSuccess(taskToken: string, output: LifecycleSignal): Promise<void> {
    try {
      await withRetries(this.#retry, () =>
        this.#client.send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(output) })),
      );
    } catch (err) {
      // The execution already moved on (the other end path, or the deadline) or is gone.
      if (err instanceof Error && ["TaskTimedOut", "TaskDoesNotExist"].includes(err.name)) return;
      throw new UpstreamUnavailableError("could not signal the task's lifecycle", { cause: errorName(err) });
    }
  }
}

/** Only the error's name travels on: Step Functions messages can quote the task token. */
function errorName(err: unknown): string {
  return err instanceof Error ? err.name : "unknown";
}
