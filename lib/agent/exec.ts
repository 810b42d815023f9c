import { spawn } from "node:child_process";
import { randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";
import { constants } from "node:os";
import { completeTask, type VendRequest, vendTask } from "./api.js";
import { MemoryTaskStore } from "./cache.js";
import { ApprovalPendingError, taskCredentials } from "./session.js";

/** Options of {@link execWithTask}. */
export interface ExecOptions {
  /** The API base URL, without a trailing slash. */
  readonly api: string;
  readonly request: VendRequest;
  /** A fresh agent token, called before each API call. */
  readonly token: () => Promise<string>;
  /** The command and its arguments (not run through a shell). */
  readonly command: readonly string[];
  /** One line for the user (stderr): failures that do not change the exit status. */
  readonly warn: (line: string) => void;
}

/**
 * `jitv exec`: vends a task, runs the command with its credentials in the environment and a local
 * credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, guarded by a random
 * `AWS_CONTAINER_AUTHORIZATION_TOKEN`) that refreshes them within the task, forwards SIGINT and
 * SIGTERM to it, and completes the task when it exits (revocation follows).
 * @returns the command's exit status (128 + the signal's number when a signal ended it)
 */
export async function execWithTask(options: ExecOptions): Promise<number> {
  const vended = await vendTask(options.api, await options.token(), options.request);
  if (!vended.credentials) throw new ApprovalPendingError(vended.taskId);
  const { taskId } = vended;
  const store = new MemoryTaskStore({ taskId, expiresAt: vended.expiresAt, credentials: vended.credentials });
  const authorization = randomBytes(32).toString("base64url");
  const server = await credentialsEndpoint(authorization, async () => {
    // The task is the command's: once it has ended, the endpoint fails rather than start another.
    const task = await taskCredentials({ ...options, store, renew: false });
    return task.credentials;
  });
  const { port } = server.address() as { port: number };
  const env: NodeJS.ProcessEnv = { ...process.env };
  // These would take precedence over the full URI and its token in the AWS SDKs.
  delete env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI;
  delete env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
  Object.assign(env, {
    AWS_ACCESS_KEY_ID: vended.credentials.AccessKeyId,
    AWS_SECRET_ACCESS_KEY: vended.credentials.SecretAccessKey,
    AWS_SESSION_TOKEN: vended.credentials.SessionToken,
    AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${port}/credentials`,
    AWS_CONTAINER_AUTHORIZATION_TOKEN: authorization,
    JITV_TASK_ID: taskId,
  });

  const [file = "", ...args] = options.command;
  const child = spawn(file, args, { stdio: "inherit", env });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  const status = await new Promise<number>((resolve) => {
    child.on("error", (error) => {
      options.warn(`cannot run ${file}: ${(error as NodeJS.ErrnoException).code ?? error.message}`);
      resolve(127);
    });
    child.on("exit", (code, signal) =>
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)),
    );
  });
  process.off("SIGINT", forward);
  process.off("SIGTERM", forward);
  await new Promise((r) => server.close(r));
  try {
    await completeTask(options.api, await options.token(), taskId);
  } catch (error) {
    options.warn(
      `could not complete task ${taskId} (${(error as Error).message}); it ends at its deadline, ${vended.expiresAt}`,
    );
  }
  return status;
}

/**
 * The container credentials endpoint on 127.0.0.1 (a free port): `GET` with the authorization
 * token answers the format the AWS SDKs read; anything else is refused.
 */
async function credentialsEndpoint(
  authorization: string,
  credentials: () => Promise<{
    AccessKeyId: string;
    SecretAccessKey: string;
    SessionToken: string;
    Expiration: string;
  }>,
): Promise<Server> {
  const expected = Buffer.from(authorization);
  const server = createServer((req, res) => {
    const given = Buffer.from(req.headers.authorization ?? "");
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return json(401, { code: "invalid_token", message: "missing or wrong authorization token" });
    if (req.method !== "GET") return json(405, { code: "method_not_allowed", message: "GET only" });
    credentials().then(
      (c) =>
        json(200, {
          AccessKeyId: c.AccessKeyId,
          SecretAccessKey: c.SecretAccessKey,
          Token: c.SessionToken,
          Expiration: c.Expiration,
        }),
      (error: Error) => json(502, { code: "refresh_failed", message: error.message }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return server;
}
