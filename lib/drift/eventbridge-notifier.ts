import { type EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { UpstreamUnavailableError } from "../domain/errors.js";
import type { Task } from "../domain/task.js";
import { type DriftNotifier, type DriftOutcome, driftDetail } from "./notifier.js";
import type { DriftFinding } from "./rules.js";

/** The `detail-type` of drift events (source `jitv`). */
export const DRIFT_DETAIL_TYPE = "Task drift detected";

/** Puts a `jitv` / {@link DRIFT_DETAIL_TYPE} event on an EventBridge bus (rules route it to chat, paging, …). */
export class EventBridgeDriftNotifier implements DriftNotifier {
  readonly #client: EventBridgeClient;
  readonly #busName: string | undefined;

  constructor(props: { client: EventBridgeClient; eventBusName?: string }) {
    this.#client = props.client;
    this.#busName = props.eventBusName;
  }

  async driftDetected(task: Task, finding: DriftFinding, outcome: DriftOutcome): Promise<void> {
    const out = await this.#client
      .send(
        new PutEventsCommand({
          Entries: [
            {
              Source: "jitv",
              DetailType: DRIFT_DETAIL_TYPE,
              Detail: JSON.stringify(driftDetail(task, finding, outcome)),
              ...(this.#busName ? { EventBusName: this.#busName } : {}),
            },
          ],
        }),
      )
      .catch((cause: unknown) => {
        throw new UpstreamUnavailableError("could not notify drift", { cause });
      });
    if ((out.FailedEntryCount ?? 0) > 0) throw new UpstreamUnavailableError("could not notify drift");
  }
}
