import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { LIFECYCLE_ASL_PATH } from "../../../lib/tasks/lifecycle.js";
import { aslToMermaid } from "../../../lib/tasks/lifecycle-diagram.js";

describe("the lifecycle diagram in docs/architecture.md", () => {
  it("is the diagram of the ASL file (regenerate with: npx tsx scripts/lifecycle-diagram.ts)", () => {
    const diagram = aslToMermaid(JSON.parse(readFileSync(LIFECYCLE_ASL_PATH, "utf8")));
    const readme = readFileSync(resolve(import.meta.dirname, "../../../docs/architecture.md"), "utf8");
    expect(readme).toContain(`\`\`\`mermaid\n${diagram}\n\`\`\``);
  });
});

describe("aslToMermaid", () => {
  it("draws a Choice's rules and default, and a Task's catches, so no state looks unreachable", () => {
    const diagram = aslToMermaid({
      StartAt: "Pick",
      States: {
        Pick: {
          Type: "Choice",
          Choices: [{ Variable: "$.go", BooleanEquals: true, Next: "Work" }],
          Default: "Stop",
        },
        Work: { Type: "Task", Catch: [{ ErrorEquals: ["States.ALL"], Next: "Stop" }], End: true },
        Stop: { Type: "Fail" },
      },
    });
    expect(diagram.split("\n")).toEqual([
      "flowchart TD",
      "  start((start)) --> Pick",
      '  Pick["Pick"]',
      '  Pick -- "$.go = true" --> Work',
      '  Pick -- "otherwise" --> Stop',
      '  Work["Work"]',
      '  Work -- "States.ALL" --> Stop',
      "  Work --> done((end))",
      '  Stop[/"Stop"/]',
    ]);
  });
});
