#!/usr/bin/env node
// Runs the CLI from the build made at install time (scripts/build-cli.mjs, dist/esm/) while it is
// current; when there is none, or a source changed since (a clone being worked on), the
// TypeScript sources through tsx. Either way `npx jitv …` runs the code in this folder.
import { readFileSync, statSync } from "node:fs";

// The AWS SDK warns on every start that future releases will need Node 22; the sandbox runs on
// Node 20 today, so keep that one notice out of the way. Every other warning is still printed.
process.removeAllListeners("warning");
process.on("warning", (warning) => {
  const nodeVersionNotice = `${warning.name} ${warning.message}`.includes("NodeVersionSupportWarning");
  if (!nodeVersionNotice) console.warn(`${warning.name}: ${warning.message}`);
});

const root = new URL("../", import.meta.url);

/** The build, unless missing or older than one of its sources (a stat per source: about 1 ms). */
function currentBuild() {
  try {
    const { builtAt, inputs } = JSON.parse(readFileSync(new URL("dist/esm/build.json", root), "utf8"));
    return inputs.every((file) => statSync(new URL(file, root)).mtimeMs < builtAt)
      ? new URL("dist/esm/jitv.mjs", root)
      : undefined;
  } catch {
    return undefined;
  }
}

const build = currentBuild();
if (build) {
  await import(build.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("./jitv.ts");
}
