// npm run bench (bundle): each Lambda's bundle size and cold import time, beside its floor: a
// module that imports only the npm packages (AWS SDK clients, libraries) the function's own code
// imports, bundled and imported the same way. Prints figures; asserts nothing.
//
// Goals (issue 11): the API function's cold import ≤ 1.0 × its floor; its bundle (without
// Cedar's wasm and the source map) ≤ 300 KB.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build, type Metafile } from "esbuild";
import { ESM_REQUIRE_BANNER } from "../infra/constructs/jitv-function.js";

const root = resolve(import.meta.dirname, "..");
const json = process.argv.includes("--json");
const runs = Number(process.argv.find((arg) => arg.startsWith("--runs="))?.slice(7) ?? 7);
const out = mkdtempSync(join(tmpdir(), "jitv-bundle-bench-"));
const cedarWasm = join(
  dirname(createRequire(import.meta.url).resolve("@cedar-policy/cedar-wasm/nodejs")),
  "cedar_wasm_bg.wasm",
);

/** Bundles one entry the way JitvFunction does (ESM, node22, minified, everything bundled). */
async function bundle(
  entry: string | { contents: string },
  outdir: string,
): Promise<{ file: string; bytes: number; meta: Metafile }> {
  const result = await build({
    // The floor's source resolves its imports from the repository, as the functions do.
    ...(typeof entry === "string"
      ? { entryPoints: [entry] }
      : { stdin: { contents: entry.contents, resolveDir: root, loader: "js" as const } }),
    outfile: join(outdir, "index.mjs"),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    mainFields: ["module", "main"],
    banner: { js: ESM_REQUIRE_BANNER },
    minify: true,
    sourcemap: true,
    sourcesContent: false,
    metafile: true,
    logLevel: "error",
  });
  const file = join(outdir, "index.mjs");
  // As JitvFunction's bundling hook: Cedar's wasm beside the bundles that load it.
  if (readFileSync(file, "utf8").includes("cedar_wasm_bg.wasm")) {
    copyFileSync(cedarWasm, join(outdir, "cedar_wasm_bg.wasm"));
  }
  return { file, bytes: statSync(file).size, meta: result.metafile };
}

/** The npm package a path inside node_modules belongs to (the innermost one). */
function packageOf(path: string): string | undefined {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(path);
  return match?.[1];
}

/** Kilobytes of a bundle's output per npm package (and `jitv` for the repository's own code). */
function bytesByPackage(meta: Metafile): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const output of Object.values(meta.outputs)) {
    for (const [path, input] of Object.entries(output.inputs)) {
      const name = packageOf(path) ?? "jitv";
      sizes.set(name, (sizes.get(name) ?? 0) + input.bytesInOutput);
    }
  }
  return sizes;
}

/**
 * The npm packages the repository's own modules import (bare specifiers) and whose code is in
 * the bundle: an import esbuild shook out entirely (a client another function builds) is not
 * something this function needs.
 */
function packagesImported(meta: Metafile): string[] {
  const kept = bytesByPackage(meta);
  const specifiers = new Set<string>();
  for (const [path, input] of Object.entries(meta.inputs)) {
    if (path.includes("node_modules")) continue;
    for (const imported of input.imports) {
      const original = imported.original ?? "";
      if (!original || original.startsWith(".") || original.startsWith("node:") || imported.external)
        continue;
      const name = packageOf(`node_modules/${original}/`);
      if (name && (kept.get(name) ?? 0) > 0) specifiers.add(original);
    }
  }
  return [...specifiers].sort();
}

/**
 * Milliseconds a fresh Node process takes to import the module and its floor, measured in
 * alternation (the machine's load hits both alike): the medians and the median of the ratios.
 */
function coldImports(file: string, floorFile: string): { ms: number; floorMs: number; ratio: number } {
  const env = {
    ...process.env,
    AWS_REGION: "us-east-1",
    JITV_TABLE_NAME: "jitv-bench",
    JITV_ISSUERS_FILE: join(root, "examples", "issuers.json"),
    JITV_STATE_MACHINE_ARN: "arn:aws:states:us-east-1:123456789012:stateMachine:jitv-bench",
    JITV_ACCOUNT_ID: "123456789012",
    JITV_TARGET_ACCOUNTS: "123456789012",
  };
  const once = (path: string) => {
    const code = `const t0 = performance.now(); await import(${JSON.stringify(pathToFileURL(path).href)}); process.stdout.write(String(performance.now() - t0));`;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", code], { env, encoding: "utf8" });
    if (child.status !== 0) throw new Error(`importing ${path} failed: ${child.stderr.split("\n")[0]}`);
    return Number(child.stdout);
  };
  const times: number[] = [];
  const floors: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < runs; i++) {
    const ms = once(file);
    const floorMs = once(floorFile);
    times.push(ms);
    floors.push(floorMs);
    ratios.push(ms / floorMs);
  }
  return { ms: median(times), floorMs: median(floors), ratio: median(ratios) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

// The pinned AWS SDK v3 (bundled on purpose: it imports faster than the runtime's copy).
const AWS_SDK = /^@(aws-sdk|smithy|aws-crypto)\//;

const results: Record<string, unknown>[] = [];
const entries = readdirSync(join(root, "functions"))
  .filter((name) => name.endsWith(".ts"))
  .sort();
for (const name of entries) {
  const fnName = name.replace(/\.ts$/, "");
  const fn = await bundle(join(root, "functions", name), join(out, fnName));
  const packages = packagesImported(fn.meta);
  const floorDir = join(out, `${fnName}.floor`);
  // Whole packages, kept alive: what importing them costs, before any of jitv's own code runs.
  const floor = await bundle(
    {
      contents: `${packages.map((spec, i) => `import * as p${i} from ${JSON.stringify(spec)};`).join("\n")}\nglobalThis.__jitvFloor = [${packages.map((_, i) => `p${i}`).join(", ")}];\n`,
    },
    floorDir,
  );
  const imports = coldImports(fn.file, floor.file);
  const sizes = bytesByPackage(fn.meta);
  const sdkBytes = [...sizes].filter(([pkg]) => AWS_SDK.test(pkg)).reduce((sum, [, bytes]) => sum + bytes, 0);
  results.push({
    function: relative(root, join(root, "functions", name)),
    bundleKB: Math.round(fn.bytes / 1024),
    awsSdkKB: Math.round(sdkBytes / 1024),
    floorBundleKB: Math.round(floor.bytes / 1024),
    coldImportMs: Number(imports.ms.toFixed(1)),
    floorImportMs: Number(imports.floorMs.toFixed(1)),
    importRatio: Number(imports.ratio.toFixed(2)),
    packages,
    largestKB: Object.fromEntries(
      [...sizes]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 5)
        .map(([name, bytes]) => [name, Math.round(bytes / 1024)]),
    ),
  });
}

if (json) {
  process.stdout.write(`${JSON.stringify({ runs, functions: results })}\n`);
} else {
  console.log(
    `bundles: size without source map or wasm (of which the bundled AWS SDK); cold import: medians of ${runs} fresh processes, alternating with the floor (ratio: median of the ratios)`,
  );
  for (const r of results) {
    console.log(
      `${String(r.function).padEnd(36)} ${String(r.bundleKB).padStart(4)} KB (SDK ${String(r.awsSdkKB).padStart(3)} KB; floor ${String(r.floorBundleKB).padStart(4)} KB)  import ${String(r.coldImportMs).padStart(6)} ms (floor ${String(r.floorImportMs).padStart(6)} ms)  ratio ${r.importRatio}`,
    );
  }
}
