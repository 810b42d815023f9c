import type { Logger } from "@aws-lambda-powertools/logger";
import type { Task } from "../domain/task.js";
import { type DriftNotifier, type DriftOutcome, driftDetail } from "./notifier.js";
import type { DriftFinding } from "./rules.js";

/** The sandbox's drift notifier: one structured line on its output. */
export class LoggerDriftNotifier implements DriftNotifier {
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  async driftDetected(task: Task, finding: DriftFinding, outcome: DriftOutcome): Promise<void> {
    this.#logger.warn("task drift detected", { drift: driftDetail(task, finding, outcome) });
  }
}
