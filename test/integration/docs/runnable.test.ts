import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exampleTemplates, freePort } from "../../support/sandbox.js";
import { killSandboxGroup, type SandboxProcess, startSandboxProcess } from "../../support/sandbox-process.js";

// Every command block of README.md and docs/*.md marked runnable (an HTML comment `<!-- runnable -->`
// on the line before a ```sh fence, invisible on GitHub) runs against a sandbox started here, so a
// command that fails as written fails this test. A page's blocks run in order in one shell, as a
// reader runs them in one terminal; `set -euo pipefail` makes any failing command fail its block.
// The docs name the default ports: 127.0.0.1:8787 (API) and :8788 (issuers) are rewritten to this
// sandbox's free ports, and JITV_API points at it.

const root = resolve(import.meta.dirname, "../../..");
const MARKER = "<!-- runnable -->";

/** The runnable blocks of one Markdown page, in order. */
function runnableBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  for (const m of markdown.matchAll(/^<!-- runnable -->\n```(\w+)\n([\s\S]*?)^```$/gm)) {
    if (m[1] !== "sh") throw new Error(`a runnable block must be \`\`\`sh, not \`\`\`${m[1]}`);
    blocks.push(m[2] ?? "");
  }
  return blocks;
}

const pages = [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`),
].map((page) => ({ page, blocks: runnableBlocks(readFileSync(join(root, page), "utf8")) }));

let dir: string;
let apiPort: number;
let issuerPort: number;
let sandbox: Promise<SandboxProcess> | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "jitv-docs-"));
  [apiPort, issuerPort] = [await freePort(), await freePort()];
});

/** The sandbox, started by the first test that needs it (its readiness poll must run in a test). */
const runningSandbox = () =>
  (sandbox ??= startSandboxProcess(
    [
      "--port",
      String(apiPort),
      "--issuer-port",
      String(issuerPort),
      "--templates",
      exampleTemplates(dir, issuerPort).dir,
    ],
    { stateFile: join(dir, "sandbox.json") },
  ));

afterAll(async () => {
  const running = await sandbox?.catch(() => undefined);
  if (running) {
    killSandboxGroup(running.child);
    await running.exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

const run = promisify(execFile);

describe("runnable command blocks of the docs", () => {
  it("finds the marked blocks (the README tour, the sandbox walk-through) and only sh blocks", () => {
    const count = (page: string) => pages.find((p) => p.page === page)?.blocks.length ?? 0;
    expect(count("README.md")).toBeGreaterThanOrEqual(3);
    expect(count("docs/sandbox.md")).toBeGreaterThanOrEqual(2);
    expect(runnableBlocks(`${MARKER}\n\`\`\`sh\necho a\n\`\`\`\n\n\`\`\`sh\necho b\n\`\`\`\n`)).toEqual([
      "echo a\n",
    ]);
    expect(() => runnableBlocks(`${MARKER}\n\`\`\`ts\nx\n\`\`\`\n`)).toThrow("must be ```sh");
  });

  it.each(pages.filter((p) => p.blocks.length > 0))(
    "$page: every runnable block exits 0 against the sandbox",
    async ({ blocks }) => {
      await runningSandbox();
      const script = [
        "set -euo pipefail",
        ...blocks.flatMap((block, i) => [
          block
            .replaceAll("127.0.0.1:8787", `127.0.0.1:${apiPort}`)
            .replaceAll("127.0.0.1:8788", `127.0.0.1:${issuerPort}`),
          // On a line of its own, even after output without a final newline (curl's).
          `printf '\\n::block ${i} ok\\n'`,
        ]),
      ].join("\n");
      const { JITV_TOKEN: _, ...env } = process.env;
      const result = await run("bash", ["-c", script], {
        cwd: root,
        env: {
          ...env,
          JITV_API: `http://127.0.0.1:${apiPort}`,
          JITV_STATE_FILE: join(dir, "sandbox.json"),
          XDG_CACHE_HOME: join(dir, "cache"),
        },
        timeout: 180_000,
      }).then(
        (ok) => ({ code: 0, ...ok }),
        (err: { code: number; stdout: string; stderr: string }) => err,
      );
      const passed = result.stdout.split("\n").filter((line) => line.startsWith("::block ")).length;
      // On failure: the first block that did not finish, and what the shell said.
      const failed = passed < blocks.length ? { block: blocks[passed], stderr: result.stderr } : undefined;
      expect(failed).toBeUndefined();
      expect(result.code).toBe(0);
    },
    240_000,
  );
});
