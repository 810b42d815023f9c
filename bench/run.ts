// npm run bench: runs the benchmarks one after another, each as its own `tsx` child process (no
// bench warms or loads another's runtime): vend, revocation, and bundle and cli when present.
// `npm run bench -- load` runs only the load benchmark. With `--json`, each bench is run with
// `--json` and this prints one JSON document, `{ "<name>": <that bench's object>, … }`.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
// The AWS SDK's notice that its 2027 releases need Node 22 stays out of the figures (the benches
// inherit this environment).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
const args = process.argv.slice(2);
const asJson = args.includes("--json");
const unknown = args.filter((arg) => arg !== "--json" && arg !== "load");
if (unknown.length > 0) {
  console.error(`usage: npm run bench [-- load] [-- --json]  (unknown: ${unknown.join(" ")})`);
  process.exit(2);
}
const file = (name: string) => join(root, "bench", `${name}.bench.ts`);
const names = args.includes("load")
  ? ["load"]
  : ["vend", "revocation", ...["bundle", "cli"].filter((name) => existsSync(file(name)))];
const tsx = join(root, "node_modules", ".bin", process.platform === "win32" ? "tsx.cmd" : "tsx");

let running: ReturnType<typeof spawn> | undefined;
// A bench stopped from outside (timeout, kill) stops the one it is running too.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    running?.kill(signal);
    process.exit(1);
  });
}

/** Runs one bench; resolves with its exit code and, with `--json`, what it printed on stdout. */
function run(name: string): Promise<{ code: number; stdout: string }> {
  return new Promise((done, fail) => {
    const child = spawn(tsx, [file(name), ...(asJson ? ["--json"] : [])], {
      cwd: root,
      stdio: ["ignore", asJson ? "pipe" : "inherit", "inherit"],
    });
    running = child;
    let stdout = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.on("error", fail);
    child.on("close", (code, signal) => done({ code: code ?? (signal ? 1 : 0), stdout }));
  });
}

const results: Record<string, unknown> = {};
let failed = false;
for (const name of names) {
  if (!asJson) console.log(`\n== bench/${name}.bench.ts`);
  const { code, stdout } = await run(name);
  if (code !== 0) {
    failed = true;
    if (asJson) results[name] = { error: `exited with ${code}` };
    else console.error(`bench/${name}.bench.ts exited with ${code}`);
    continue;
  }
  if (!asJson) continue;
  try {
    results[name] = JSON.parse(stdout);
  } catch {
    failed = true;
    results[name] = { error: "did not print one JSON object" };
  }
}
if (asJson) console.log(JSON.stringify(results, null, 2));
process.exit(failed ? 1 : 0);
