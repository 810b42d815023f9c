import type { Logger } from "@aws-lambda-powertools/logger";
import type { Task } from "../domain/task.js";
import { type ApprovalNotifier, pendingApprovalDetail } from "./notifier.js";

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
