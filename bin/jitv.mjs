#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so `npx jitv …` works without a build step.
import { register } from "tsx/esm/api";

// The AWS SDK warns on every start that future releases will need Node 22; the sandbox runs on
// Node 20 today, so keep that one notice out of the way. Every other warning is still printed.
process.removeAllListeners("warning");
process.on("warning", (warning) => {
  const nodeVersionNotice = `${warning.name} ${warning.message}`.includes("NodeVersionSupportWarning");
  if (!nodeVersionNotice) console.warn(`${warning.name}: ${warning.message}`);
});

register();
await import("./jitv.ts");
