import { createHash, randomBytes } from "node:crypto";
import { chmod, mkdir, open, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { TaskCredentials } from "./api.js";

/** One stored task: its id, its deadline and its latest credentials (none while it waits for approval). */
export interface StoredTask {
  readonly taskId: string;
  /** RFC 3339: the task's deadline. */
  readonly expiresAt: string;
  readonly credentials?: TaskCredentials;
}

/** A stored task with credentials. */
export interface CachedTask extends StoredTask {
  readonly credentials: TaskCredentials;
}

/** Where one task is kept between calls, and how callers take turns on it. */
export interface TaskStore {
  read(): Promise<StoredTask | undefined>;
  write(task: StoredTask): Promise<void>;
  /** Runs `fn` while no other caller of the same store (in any process, for files) runs one. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

/** The agent, as its token names it (unverified: it only picks the cache entry). */
export interface AgentIdentity {
  readonly issuer: string;
  readonly subject: string;
}

/** What a cache entry is for (CONTRACT.md section 8). */
export interface CacheKey {
  readonly api: string;
  readonly agent: AgentIdentity;
  readonly template: string;
  readonly parameters?: Readonly<Record<string, string>>;
}

/**
 * The per-user cache folder: `$JITV_CACHE_DIR`, else `$XDG_CACHE_HOME/jitv`, else `~/.cache/jitv`.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.JITV_CACHE_DIR) return env.JITV_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "jitv");
}

/**
 * The agent a token names, from its unverified claims (`iss`, `sub`). The API verifies the token;
 * here the claims only choose the cache entry. A token that is not a JWT counts as its own agent.
 */
export function tokenIdentity(token: string): AgentIdentity {
  try {
    const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8"));
    if (typeof claims.iss === "string" && typeof claims.sub === "string")
      return { issuer: claims.iss, subject: claims.sub };
  } catch {
    // not a JWT: fall through
  }
  return { issuer: "opaque", subject: sha256(token) };
}

/** Lock files older than this belong to a process that died holding them. */
const STALE_LOCK_MS = 120_000;
/** How long a caller waits for another process's vend before giving up. */
const LOCK_WAIT_MS = 150_000;

/**
 * A {@link TaskStore} in one file of the cache folder (folder 0700, file 0600, written to a temp
 * file and renamed, so readers never see half a file), locked across processes with an `O_EXCL`
 * lock file beside it.
 */
export class FileTaskStore implements TaskStore {
  readonly file: string;

  constructor(
    readonly dir: string,
    key: CacheKey,
  ) {
    const parameters = Object.entries(key.parameters ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const id = sha256(
      JSON.stringify([key.api, key.agent.issuer, key.agent.subject, key.template, parameters]),
    ).slice(0, 40);
    this.file = join(dir, `task-${id}.json`);
  }

  async read(): Promise<StoredTask | undefined> {
    const entry = await readPrivateJson(this.file);
    const task = entry as Partial<StoredTask> | undefined;
    const creds = task?.credentials;
    if (typeof task?.taskId !== "string" || typeof task.expiresAt !== "string") return undefined;
    if (
      creds !== undefined &&
      (typeof creds?.AccessKeyId !== "string" ||
        typeof creds.SecretAccessKey !== "string" ||
        typeof creds.SessionToken !== "string" ||
        typeof creds.Expiration !== "string")
    )
      return undefined;
    return task as StoredTask;
  }

  async write(task: StoredTask): Promise<void> {
    await writePrivateJson(this.dir, this.file, {
      taskId: task.taskId,
      expiresAt: task.expiresAt,
      ...(task.credentials ? { credentials: task.credentials } : {}),
    });
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await privateDir(this.dir);
    const lock = `${this.file}.lock`;
    const giveUp = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        await writeFile(lock, String(process.pid), { flag: "wx", mode: 0o600 });
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const held = await stat(lock).catch(() => undefined);
      if (held && Date.now() - held.mtimeMs > STALE_LOCK_MS) await unlink(lock).catch(() => undefined);
      else if (Date.now() > giveUp) throw new Error(`timed out waiting for the cache lock ${lock}`);
      else await new Promise((r) => setTimeout(r, 25 + Math.random() * 50));
    }
    try {
      return await fn();
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }
}

/** A {@link TaskStore} in memory: one process, calls taken in turn. */
export class MemoryTaskStore implements TaskStore {
  #task: StoredTask | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(task?: StoredTask) {
    this.#task = task;
  }

  async read(): Promise<StoredTask | undefined> {
    return this.#task;
  }

  async write(task: StoredTask): Promise<void> {
    this.#task = task;
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

/**
 * The agent a token source (e.g. a `--token-command`) named last time, so a cache hit needs no
 * token at all; `undefined` when unknown.
 */
export async function readIdentityHint(dir: string, source: string): Promise<AgentIdentity | undefined> {
  const hint = (await readPrivateJson(hintFile(dir, source))) as Partial<AgentIdentity> | undefined;
  return typeof hint?.issuer === "string" && typeof hint.subject === "string"
    ? { issuer: hint.issuer, subject: hint.subject }
    : undefined;
}

/** Remembers which agent a token source names (see {@link readIdentityHint}). */
export async function writeIdentityHint(dir: string, source: string, agent: AgentIdentity): Promise<void> {
  await writePrivateJson(dir, hintFile(dir, source), { issuer: agent.issuer, subject: agent.subject });
}

function hintFile(dir: string, source: string): string {
  return join(dir, `agent-${sha256(source).slice(0, 40)}.json`);
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** The cache folder, created 0700; one left readable by others is closed first. */
async function privateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { mode } = await stat(dir);
  if (mode & 0o077) await chmod(dir, 0o700);
}

/**
 * A cache file's JSON, or `undefined` when it is missing, unreadable, not ours or readable by
 * others (then it is not trusted: it may have been planted or leaked, and is rewritten).
 */
async function readPrivateJson(file: string): Promise<unknown> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(file, "r");
    const info = await handle.stat();
    if (info.mode & 0o077 || (process.getuid && info.uid !== process.getuid())) return undefined;
    return JSON.parse(await readFile(handle, "utf8"));
  } catch {
    return undefined;
  } finally {
    await handle?.close();
  }
}

/** Writes `value` as `file` (0600) through a temp file and a rename: readers see old or new, never half. */
async function writePrivateJson(dir: string, file: string, value: unknown): Promise<void> {
  await privateDir(dir);
  const temp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFile(temp, `${JSON.stringify(value)}\n`, { flag: "wx", mode: 0o600 });
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}
