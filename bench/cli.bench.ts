// CLI start time: median wall time of `node bin/jitv.mjs help` and of a cache hit of
// `jitv credential-process`, each against bare `node -e 0` (goal: ≤ 3×, issue 13). Builds the CLI
// from the current sources first, as `npm ci` does. Prints figures; asserts nothing.
// `--json`: one JSON object on stdout; `--runs N`: runs per command (default 15).
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { FileTaskStore } from "../lib/agent/cache.js";
import { buildCli } from "../scripts/build-cli.mjs";

const json = process.argv.includes("--json");
const runsArg = process.argv.indexOf("--runs");
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 15;
const root = resolve(import.meta.dirname, "..");
const cli = join(root, "bin", "jitv.mjs");
if (!(await buildCli())) throw new Error("esbuild is not installed: nothing to measure");

// A cache entry that answers without the API: a fresh task for an agent named by a (fake) token.
const cache = mkdtempSync(join(tmpdir(), "jitv-bench-cli-"));
const api = "http://127.0.0.1:9";
const agent = { issuer: "https://issuer.example", subject: "bench-agent" };
const token = `e30.${Buffer.from(JSON.stringify({ iss: agent.issuer, sub: agent.subject })).toString("base64url")}.x`;
await new FileTaskStore(cache, { api, agent, template: "bench" }).write({
  taskId: "tsk_bench",
  expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  credentials: {
    AccessKeyId: "JITVSANDBOXBENCH0000",
    SecretAccessKey: "jitv-sandbox-not-aws-bench",
    SessionToken: "jitv-sandbox-session:bench",
    Expiration: new Date(Date.now() + 3_600_000).toISOString(),
  },
});

/** Median wall time of each command; runs interleaved, so load from elsewhere hits all alike. */
function medians(commands: Record<string, string[]>): Record<string, number> {
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(commands).map((name) => [name, []]));
  for (let i = 0; i < runs; i++) {
    for (const [name, args] of Object.entries(commands)) {
      const t0 = performance.now();
      const run = spawnSync(process.execPath, args, {
        env: { PATH: process.env.PATH ?? "", JITV_CACHE_DIR: cache },
        encoding: "utf8",
      });
      times[name]?.push(performance.now() - t0);
      if (run.status !== 0) throw new Error(`${args.join(" ")} exited ${run.status}: ${run.stderr}`);
    }
  }
  return Object.fromEntries(
    Object.entries(times).map(([name, list]) => [
      name,
      list.sort((a, b) => a - b)[Math.floor(list.length / 2)] as number,
    ]),
  );
}

const {
  bare = 0,
  help = 0,
  cacheHit = 0,
} = medians({
  bare: ["-e", "0"],
  help: [cli, "help"],
  cacheHit: [cli, "credential-process", "--template", "bench", "--api", api, "--token", token],
});
const result = {
  runs,
  nodeMs: Number(bare.toFixed(1)),
  helpMs: Number(help.toFixed(1)),
  credentialProcessCacheHitMs: Number(cacheHit.toFixed(1)),
  helpRatio: Number((help / bare).toFixed(2)),
  credentialProcessRatio: Number((cacheHit / bare).toFixed(2)),
  goalRatio: 3,
};
if (json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  console.log(`CLI start, median of ${runs} runs (goal ≤ ${result.goalRatio}× node -e 0):`);
  console.log(`  node -e 0                          ${result.nodeMs} ms`);
  console.log(`  jitv help                          ${result.helpMs} ms  (${result.helpRatio}×)`);
  console.log(
    `  jitv credential-process (cached)   ${result.credentialProcessCacheHitMs} ms  (${result.credentialProcessRatio}×)`,
  );
}
