#!/usr/bin/env node
// Compiles the CLI (bin/jitv.ts) and `jitv/credentials` (lib/agent/credentials.ts) to plain ESM in
// dist/esm/, so `jitv` starts without compiling TypeScript (bin/jitv.mjs falls back to tsx when
// the build is missing). Run by `npm run build`, by `prepare` (npm ci / npm install in a clone)
// and once by the test setup, so tests always run the current source.
//
// - Only our TypeScript is bundled; packages stay imports of node_modules.
// - Code splitting keeps each command's modules (and the packages they import) in their own
//   chunk, loaded by the dynamic import in bin/jitv.ts: `jitv help` loads none of them.
// - The output sits two folders below the project root, as lib/<capability>/*.ts do, so paths
//   that sources resolve from `import.meta.url` (the lifecycle ASL, .jitv/) stay right.
// - Files are written to a temp folder and renamed into place one by one (chunks first, entries
//   last), so a `jitv` started meanwhile sees the old build or the new one, never half a file.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Where the build goes (git-ignored). */
export const OUT_DIR = join(root, "dist", "esm");
/** `{builtAt, inputs}`: when the build started and the sources it compiled (relative to the root). */
const BUILD_INFO = "build.json";
/** Declarations of `jitv/credentials` (package.json `exports`). */
const TYPES_DIR = join(root, "dist", "types");

/**
 * Builds dist/esm/ and, with `types`, the declarations of `jitv/credentials` in dist/types/.
 * Throws when esbuild is installed but the build fails.
 * @returns false when esbuild is not installed (production install): the CLI then runs through tsx
 */
export async function buildCli({ types = false } = {}) {
  let esbuild;
  try {
    esbuild = await import("esbuild");
  } catch {
    return false;
  }
  const temp = join(root, "dist", `.build-${process.pid}-${Date.now()}`);
  const builtAt = Date.now();
  try {
    const result = await esbuild.build({
      absWorkingDir: root,
      entryPoints: { jitv: "bin/jitv.ts", credentials: "lib/agent/credentials.ts" },
      bundle: true,
      splitting: true,
      platform: "node",
      format: "esm",
      target: "node20",
      packages: "external",
      outdir: temp,
      outExtension: { ".js": ".mjs" },
      metafile: true,
      logLevel: "silent",
    });
    mkdirSync(OUT_DIR, { recursive: true });
    const built = Object.keys(result.metafile.outputs).map((file) => relative(temp, join(root, file)));
    // What bin/jitv.mjs checks: a source changed since this build means the build is stale.
    const inputs = Object.keys(result.metafile.inputs).filter((file) => !file.startsWith("node_modules/"));
    writeFileSync(join(temp, BUILD_INFO), JSON.stringify({ builtAt, inputs }));
    built.push(BUILD_INFO);
    const entries = new Set(["jitv.mjs", "credentials.mjs", BUILD_INFO]);
    for (const file of [...built.filter((f) => !entries.has(f)), ...entries])
      renameSync(join(temp, file), join(OUT_DIR, file));
    // Chunks of earlier builds are named by other hashes; nothing refers to them any more.
    for (const file of readdirSync(OUT_DIR)) if (!built.includes(file)) rmSync(join(OUT_DIR, file));
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
  let tsc;
  try {
    tsc = types ? createRequire(import.meta.url).resolve("typescript/bin/tsc") : undefined;
  } catch {
    // TypeScript not installed: no declarations, the JavaScript still works.
  }
  if (tsc) {
    execFileSync(
      process.execPath,
      [
        tsc,
        "lib/agent/credentials.ts",
        "--declaration",
        "--emitDeclarationOnly",
        "--outDir",
        TYPES_DIR,
        "--module",
        "nodenext",
        "--moduleResolution",
        "nodenext",
        "--target",
        "es2022",
        "--strict",
        "--skipLibCheck",
        "--types",
        "node",
      ],
      { cwd: root, stdio: "inherit" },
    );
  }
  return true;
}

/** Removes the build, so bin/jitv.mjs runs the sources through tsx. */
export function removeCliBuild() {
  rmSync(OUT_DIR, { recursive: true, force: true });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    if (await buildCli({ types: true }))
      console.log(`jitv: CLI built in ${relative(process.cwd(), OUT_DIR) || "."}`);
    else console.log("jitv: esbuild not installed; the CLI will run through tsx");
  } catch (error) {
    // A broken build must not be left behind: without one, the CLI runs the sources.
    if (existsSync(OUT_DIR)) removeCliBuild();
    console.error(`jitv: CLI build failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
