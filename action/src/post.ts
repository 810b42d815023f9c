/**
 * The action's post step, run when the job ends whether it passed or failed (`post-if: always()`):
 * completes the task main vended, so jitv revokes its credentials and rotates its secrets now
 * rather than at the task's deadline. A task that already ended (`409`) is reported, not failed.
 */
import { ApiError, JitvClient, requestIdToken, TASK_STATE } from "./jitv.js";
import { getInput, getState, info, runStep } from "./runner.js";

/** Tries to complete, with these pauses between attempts, while the API answers 429/5xx. */
const RETRY_DELAYS_MS = [1000, 3000];

runStep(async () => {
  const taskId = getState(TASK_STATE);
  if (taskId === "") {
    info("jitv: the main step started no task; nothing to complete.");
    return;
  }
  const api = getInput("api", { required: true });
  const audience = getInput("audience") || "jitv";
  const client = new JitvClient(api, () => requestIdToken(audience));
  for (let attempt = 0; ; attempt++) {
    try {
      await client.complete(taskId);
      info(`jitv: task ${taskId} completed; its credentials are revoked and its secrets rotated.`);
      return;
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 409) {
        info(`jitv: task ${taskId} is not active (${failure.detail || "conflict"}); nothing to complete.`);
        return;
      }
      const delay = RETRY_DELAYS_MS[attempt];
      if (!(failure instanceof ApiError && failure.transient) || delay === undefined) throw failure;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
});
