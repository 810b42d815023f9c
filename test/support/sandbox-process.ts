import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { expect } from "vitest";
import type { SandboxState } from "../../lib/sandbox/sandbox.js";

const root = resolve(import.meta.dirname, "../..");
const cli = join(root, "bin", "jitv.mjs");
const clockOffset = join(root, "test", "support", "clock-offset.mjs");

/** A `jitv dev` child process, and what `sandboxToken`/`sandboxVend` need to talk to it. */
export interface SandboxProcess {
  readonly child: ChildProcess;
  readonly sandbox: { readonly apiUrl: string; readonly state: SandboxState };
  /** Everything it wrote on stdout and stderr so far. */
  output(): string;
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;
}

/**
 * Starts `node bin/jitv.mjs dev ARGS` in its own process group (so {@link killSandboxGroup} takes
 * its DynamoDB Local JVM down with it, like a machine crash) and waits for its banner.
 * `clockOffsetMs` moves the child's `Date` forward (see clock-offset.mjs).
 */
export async function startSandboxProcess(
  args: readonly string[],
  options: { stateFile: string; env?: Record<string, string>; clockOffsetMs?: number },
): Promise<SandboxProcess> {
  const preload = options.clockOffsetMs ? ["--import", clockOffset] : [];
  const child = spawn(process.execPath, [...preload, cli, "dev", ...args], {
    env: {
      ...process.env,
      POWERTOOLS_LOG_LEVEL: "WARN",
      ...options.env,
      JITV_STATE_FILE: options.stateFile,
      JITV_CLOCK_OFFSET_MS: String(options.clockOffsetMs ?? 0),
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let output = "";
  child.stdout?.on("data", (d) => {
    output += d;
  });
  child.stderr?.on("data", (d) => {
    output += d;
  });
  // A boolean, so a failure never prints the output (it may hold what a test scans for).
  await expect
    .poll(() => output.includes("Ctrl-C stops everything") || child.exitCode !== null, {
      timeout: 60_000,
      interval: 200,
    })
    .toBe(true);
  if (child.exitCode !== null) throw new Error(`jitv dev exited with code ${child.exitCode}`);
  const state = JSON.parse(readFileSync(options.stateFile, "utf8")) as SandboxState;
  return { child, sandbox: { apiUrl: state.apiUrl, state }, output: () => output, exited };
}

/** SIGKILLs a sandbox process and everything it started (its process group). Harmless once gone. */
export function killSandboxGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}
