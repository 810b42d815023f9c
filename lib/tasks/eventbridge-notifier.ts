import { type EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { UpstreamUnavailableError } from "../domain/errors.js";
import type { Task } from "../domain/task.js";
import { type ApprovalNotifier, pendingApprovalDetail } from "./notifier.js";

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
