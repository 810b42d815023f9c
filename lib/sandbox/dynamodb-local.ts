import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { installDynamoDbLocal } from "../../scripts/install-dynamodb-local.mjs";

/** Options of {@link startDynamoDbLocal}. */
export interface DynamoDbLocalOptions {
  /**
   * TCP port to listen on; `0` picks a free one.
   * @default 0
   */
  readonly port?: number;
  /**
   * Directory to keep the database in between runs. Without it the database lives in memory
   * and is gone when the process stops.
   */
  readonly dbPath?: string;
  /** Receives every line DynamoDB Local writes to stdout/stderr. Otherwise they are dropped. */
  readonly log?: (line: string) => void;
  /**
   * How long to wait for the first successful `ListTables`.
   * @default 30000
   */
  readonly startTimeoutMs?: number;
  /**
   * The `java` executable (Java 17 or newer).
   * @default "java"
   */
  readonly java?: string;
}

/** A running DynamoDB Local. */
export interface DynamoDbLocal {
  /** `http://127.0.0.1:<port>`: the endpoint to give the SDK clients. */
  readonly endpoint: string;
  readonly port: number;
  /** Stops the Java process (SIGTERM, then SIGKILL after 3 s); resolves once it has exited. Idempotent. */
  stop(): Promise<void>;
}

const STDERR_TAIL_LINES = 20;
const KILL_GRACE_MS = 3_000;
const MAX_PORT_ATTEMPTS = 3;

/**
 * Starts DynamoDB Local (real TTL deletion and streams) as a Java child process and waits until
 * it answers `ListTables`. It runs with `-sharedDb`, so every client sees the same tables
 * whatever its region or credentials. DynamoDB Local has no bind-address option and listens on
 * all interfaces; the returned endpoint uses 127.0.0.1 only. Telemetry is disabled.
 *
 * The child is killed when this Node process exits, so no Java process outlives a test run or
 * the sandbox (except when Node itself is SIGKILLed).
 *
 * @throws Error with the tail of Java's stderr when the process dies or does not answer in time
 * @example
 * const ddb = await startDynamoDbLocal({ log: (line) => console.error(line) });
 * const client = new DynamoDBClient({ endpoint: ddb.endpoint, region: "us-east-1",
 *   credentials: { accessKeyId: "local", secretAccessKey: "local" } });
 * // …
 * await ddb.stop();
 */
export async function startDynamoDbLocal(options: DynamoDbLocalOptions = {}): Promise<DynamoDbLocal> {
  const dir = ensureInstalled();
  let lastError: unknown;
  // A port picked by the OS can be taken by someone else before Java binds it; try again then.
  const attempts = options.port ? 1 : MAX_PORT_ATTEMPTS;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = options.port || (await findFreePort());
    try {
      return await launch(dir, port, options);
    } catch (error) {
      lastError = error;
      if (!(error instanceof PortInUseError)) throw error;
    }
  }
  throw lastError;
}

class PortInUseError extends Error {}

function ensureInstalled(): string {
  const dir = installDynamoDbLocal();
  if (!existsSync(join(dir, "DynamoDBLocal.jar"))) {
    throw new Error(
      `DynamoDB Local is not installed in ${dir}: run "node scripts/install-dynamodb-local.mjs"`,
    );
  }
  return dir;
}

async function launch(dir: string, port: number, options: DynamoDbLocalOptions): Promise<DynamoDbLocal> {
  const storage = ["-sharedDb"];
  if (options.dbPath) {
    const dbPath = resolve(options.dbPath);
    mkdirSync(dbPath, { recursive: true });
    storage.push("-dbPath", dbPath);
  } else {
    storage.push("-inMemory");
  }
  const args = [
    `-Djava.library.path=${join(dir, "DynamoDBLocal_lib")}`,
    // DynamoDB Local is a short-lived development server: skip the optimising JIT tiers.
    "-XX:TieredStopAtLevel=1",
    "-jar",
    join(dir, "DynamoDBLocal.jar"),
    "-port",
    String(port),
    "-disableTelemetry",
    ...storage,
  ];
  const child = spawn(options.java ?? "java", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });

  const stderrTail: string[] = [];
  // When the port is taken, Jetty's start fails but the JVM stays up (its job threads are not
  // daemons), so the failure has to be read from the output rather than from the exit.
  let reportBindFailure: (error: Error) => void = () => {};
  const bindFailed = new Promise<never>((_, fail) => {
    reportBindFailure = fail;
  });
  const watch = (line: string) => {
    if (/Failed to bind|BindException|Address already in use/.test(line)) {
      reportBindFailure(new PortInUseError(`DynamoDB Local could not bind port ${port}: it is in use`));
    }
  };
  forwardLines(child.stdout, (line) => {
    watch(line);
    options.log?.(line);
  });
  forwardLines(child.stderr, (line) => {
    stderrTail.push(line);
    if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
    watch(line);
    options.log?.(line);
  });

  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.on("exit", killOnExit);

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (done) => {
      child.once("error", (error) => done({ code: null, signal: null, error }));
      child.once("exit", (code, signal) => done({ code, signal }));
    },
  );
  exited.then(() => process.off("exit", killOnExit));

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= stopChild(child, exited);
    return stopping;
  };

  const endpoint = `http://127.0.0.1:${port}`;
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const died = exited.then((exit) => {
    const tail = stderrTail.join("\n");
    if (exit.error) {
      const hint = (exit.error as NodeJS.ErrnoException).code === "ENOENT" ? " (is Java 17+ on PATH?)" : "";
      throw new Error(`could not start DynamoDB Local: ${exit.error.message}${hint}`);
    }
    throw new Error(
      `DynamoDB Local exited during start-up (${exit.signal ?? `code ${exit.code}`})${tail ? `:\n${tail}` : ""}`,
    );
  });
  const giveUp = new AbortController();
  try {
    await Promise.race([
      waitUntilReady(endpoint, timeoutMs, giveUp.signal, () => stderrTail.join("\n")),
      died,
      bindFailed,
    ]);
  } catch (error) {
    giveUp.abort();
    await stop();
    throw error;
  }
  // After start-up an unexpected exit is reported through the clients' connection errors.
  died.catch(() => {});
  bindFailed.catch(() => {});
  return { endpoint, port, stop };
}

function forwardLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buffered = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split(/\r?\n/);
    buffered = lines.pop() ?? "";
    for (const line of lines) if (line.trim()) onLine(line);
  });
  stream.on("end", () => {
    if (buffered.trim()) onLine(buffered);
  });
}

async function waitUntilReady(
  endpoint: string,
  timeoutMs: number,
  giveUp: AbortSignal,
  stderrTail: () => string,
): Promise<void> {
  const client = new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 1_000, requestTimeout: 2_000, throwOnRequestTimeout: true },
  });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      try {
        await client.send(new ListTablesCommand({ Limit: 1 }), { abortSignal: AbortSignal.timeout(2_000) });
        return;
      } catch {
        if (giveUp.aborted) return;
        if (Date.now() >= deadline) {
          const tail = stderrTail();
          throw new Error(
            `DynamoDB Local did not answer on ${endpoint} within ${timeoutMs} ms${tail ? `:\n${tail}` : ""}`,
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    client.destroy();
  }
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const escalate = setTimeout(() => child.kill("SIGKILL"), KILL_GRACE_MS);
  try {
    await exited;
  } finally {
    clearTimeout(escalate);
  }
}

function findFreePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.unref();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port ? done(port) : fail(new Error("could not find a free port"))));
    });
  });
}
