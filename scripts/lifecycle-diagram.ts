// Prints the lifecycle state machine as a Mermaid flowchart, for docs/architecture.md.
import { readFileSync } from "node:fs";
import { LIFECYCLE_ASL_PATH } from "../lib/tasks/lifecycle.js";
import { aslToMermaid } from "../lib/tasks/lifecycle-diagram.js";

process.stdout.write(`${aslToMermaid(JSON.parse(readFileSync(LIFECYCLE_ASL_PATH, "utf8")))}\n`);
