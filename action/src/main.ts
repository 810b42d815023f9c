/**
 * The action's main step: vends one jitv task for this job with the job's OIDC token, waits
 * for approval when the template asks for it, and hands the credentials to the job's later
 * steps through `GITHUB_ENV`, masked first. The post step (post.ts) completes the task.
 */
import { ApiError, type Credentials, JitvClient, requestIdToken, TASK_STATE, type TaskView } from "./jitv.js";
import {
  ActionError,
  exportVariable,
  getInput,
  info,
  notice,
  runStep,
  saveState,
  setOutput,
} from "./runner.js";

/** The contract's limit on `purpose`. */
const MAX_PURPOSE_LENGTH = 256;
/** action.yml's default for `approval-timeout`, for a runner that passes none. */
const DEFAULT_APPROVAL_TIMEOUT_SECONDS = 600;
/** Polling a pending task starts at 1 s and backs off to this. */
const MAX_POLL_INTERVAL_MS = 10_000;

interface Inputs {
  readonly api: string;
  readonly audience: string;
  readonly approvalTimeoutSeconds: number;
  readonly body: Record<string, unknown>;
}

/**
 * `parameters`: one `name=value` a line (blank lines ignored), split at the first `=`.
 * @throws ActionError naming the line, for a line without a name or a name given twice
 */
function parseParameters(text: string): Record<string, string> {
  const parameters = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "") return;
    const eq = line.indexOf("=");
    const name = line.slice(0, Math.max(eq, 0)).trim();
    if (name === "") throw new ActionError(`input "parameters" line ${index + 1}: expected name=value`);
    if (parameters.has(name)) throw new ActionError(`input "parameters" gives "${name}" twice`);
    parameters.set(name, line.slice(eq + 1).trim());
  });
  return Object.fromEntries(parameters);
}

function seconds(name: string): number | undefined {
  const value = getInput(name);
  if (value === "") return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new ActionError(`input "${name}" must be a whole number of seconds`);
  return Number(value);
}

/** Without a `purpose` input: which run this is, for the audit trail. */
function defaultPurpose(): string | undefined {
  const {
    GITHUB_REPOSITORY: repo,
    GITHUB_WORKFLOW: workflow,
    GITHUB_RUN_ID: run,
    GITHUB_JOB: job,
  } = process.env;
  if (!repo || !run) return undefined;
  return `GitHub Actions ${repo}${workflow ? ` workflow "${workflow}"` : ""}${job ? ` job ${job}` : ""} run ${run}`;
}

function readInputs(): Inputs {
  const api = getInput("api", { required: true });
  const template = getInput("template", { required: true });
  const parameters = parseParameters(getInput("parameters"));
  const ttlSeconds = seconds("ttl");
  const purpose = (getInput("purpose") || defaultPurpose())?.slice(0, MAX_PURPOSE_LENGTH);
  return {
    api,
    audience: getInput("audience") || "jitv",
    approvalTimeoutSeconds: seconds("approval-timeout") ?? DEFAULT_APPROVAL_TIMEOUT_SECONDS,
    body: {
      template,
      ...(Object.keys(parameters).length > 0 ? { parameters } : {}),
      ...(purpose ? { purpose } : {}),
      ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
    },
  };
}

/** Exports the credentials (masked when they arrived) and the task id to the job's later steps. */
function handOver(task: TaskView, credentials: Credentials): void {
  exportVariable("AWS_ACCESS_KEY_ID", credentials.AccessKeyId);
  exportVariable("AWS_SECRET_ACCESS_KEY", credentials.SecretAccessKey);
  exportVariable("AWS_SESSION_TOKEN", credentials.SessionToken);
  exportVariable("JITV_TASK_ID", task.taskId);
  setOutput("task-id", task.taskId);
  info(
    `jitv: task ${task.taskId} (template "${task.template}") is active until ${task.expiresAt}; ` +
      `its credentials expire at ${credentials.Expiration}. The post step completes the task when the job ends.`,
  );
}

/** Says who may approve a pending task, and how. */
function announcePending(task: TaskView, timeoutSeconds: number): void {
  const actors = task.onBehalfOf
    ? `agent "${task.agent.id}" and user "${task.onBehalfOf.user}"`
    : `agent "${task.agent.id}"`;
  const who = task.onBehalfOf
    ? `an approver of tenant "${task.onBehalfOf.tenant}"`
    : "an approver of the template's zone";
  notice(
    `jitv: task ${task.taskId} (template "${task.template}") needs approval before it gets credentials: ` +
      `${who}, other than ${actors}, runs "jitv task approve ${task.taskId}" (or "jitv task deny ${task.taskId}").`,
  );
  info(`jitv: waiting up to ${timeoutSeconds} s; the request lapses at ${task.expiresAt}.`);
}

/** Polls a pending task until it is active (then fetches its credentials), refused, or the wait is over. */
async function awaitApproval(client: JitvClient, task: TaskView, timeoutSeconds: number): Promise<TaskView> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let interval = 1000;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new ActionError(
        `jitv: task ${task.taskId} is still pending approval after ${timeoutSeconds} s (input approval-timeout); ` +
          `an approval that comes later is not used by this job`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(interval, remaining)));
    interval = Math.min(interval * 2, MAX_POLL_INTERVAL_MS);
    let current: TaskView;
    try {
      current = await client.get(task.taskId);
    } catch (failure) {
      // A passing outage of the API must not end a long wait: ask again at the next poll.
      if (failure instanceof ApiError && failure.transient) continue;
      throw failure;
    }
    if (current.status === "active") return client.credentials(task.taskId);
    if (current.status !== "pending_approval") {
      throw new ActionError(
        `jitv: task ${task.taskId} was not approved: it is ${current.status}${current.reason ? ` (${current.reason})` : ""}`,
      );
    }
  }
}

runStep(async () => {
  const inputs = readInputs();
  const client = new JitvClient(inputs.api, () => requestIdToken(inputs.audience));
  let task = await client.vend(inputs.body);
  // Saved first: whatever fails from here on (or an approval that lands late), post completes the task.
  saveState(TASK_STATE, task.taskId);
  if (task.status === "pending_approval") {
    announcePending(task, inputs.approvalTimeoutSeconds);
    task = await awaitApproval(client, task, inputs.approvalTimeoutSeconds);
  }
  if (!task.credentials)
    throw new ActionError(`jitv: task ${task.taskId} is ${task.status} and has no credentials`);
  handOver(task, task.credentials);
});
