import type { Logger } from "@aws-lambda-powertools/logger";
import { type EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { UpstreamUnavailableError } from "../domain/errors.js";
import type { Task } from "../domain/task.js";

/** Port: tells approvers a task is waiting for them. */
export interface ApprovalNotifier {
  pendingApproval(task: Task, quorum: number): Promise<void>;
}

/** The event's detail: who asks, for whom, what, until when. Never tokens or policies. */
export function pendingApprovalDetail(task: Task, quorum: number) {
  return {
    taskId: task.taskId,
    template: task.template,
    zone: task.zone,
    agent: task.agent,
    ...(task.onBehalfOf
      ? { onBehalfOf: { user: task.onBehalfOf.user, tenant: task.onBehalfOf.tenant } }
      : {}),
    ...(task.purpose === undefined ? {} : { purpose: task.purpose }),
    approvalsRequired: quorum,
    decideBy: task.expiresAt,
  };
}

/** Puts a `jitv` / `Task pending approval` event on an EventBridge bus (rules route it to chat, e-mail, …). */
export class EventBridgeNotifier implements ApprovalNotifier {
  readonly #client: EventBridgeClient;
  readonly #busName: string | undefined;

  constructor(props: { client: EventBridgeClient; eventBusName?: string }) {
    this.#client = props.client;
    this.#busName = props.eventBusName;
  }

  async pendingApproval(task: Task, quorum: number): Promise<void> {
    const out = await this.#client
      .send(
        new PutEventsCommand({
          Entries: [
            {
              Source: "jitv",
              DetailType: "Task pending approval",
              Detail: JSON.stringify(pendingApprovalDetail(task, quorum)),
              ...(this.#busName ? { EventBusName: this.#busName } : {}),
            },
          ],
        }),
      )
      .catch((cause: unknown) => {
        throw new UpstreamUnavailableError("could not notify approvers", { cause });
      });
    if ((out.FailedEntryCount ?? 0) > 0) throw new UpstreamUnavailableError("could not notify approvers");
  }
}

/** The sandbox's notifier: one structured line on its output. */
export class LoggerNotifier implements ApprovalNotifier {
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  async pendingApproval(task: Task, quorum: number): Promise<void> {
    this.#logger.info("task pending approval", { approval: pendingApprovalDetail(task, quorum) });
  }
}
