import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { commandHelp, USAGE } from "../../../lib/cli/usage.js";
import { CONTRACT_ROUTES, openApiDocument } from "../../../lib/http/contract.js";
import { API_DOC, renderApiDoc } from "../../../scripts/docs-api.js";
import { CLI_DOC, renderCliDoc, usageCommands } from "../../../scripts/docs-cli.js";

// docs/api.md and docs/cli.md are generated from the OpenAPI document and the CLI's help text;
// the checked-in pages must be what the generators produce now.

const root = resolve(import.meta.dirname, "../../..");
const checkedIn = (path: string) => readFileSync(join(root, path), "utf8");

describe("generated docs", () => {
  it("docs/api.md is generated from the OpenAPI document (run npm run docs)", () => {
    const page = renderApiDoc(openApiDocument());
    expect(checkedIn(API_DOC), "docs/api.md is stale: run npm run docs").toBe(page);
    for (const route of CONTRACT_ROUTES) expect(page).toContain(`## ${route.method} ${route.path}\n`);
    // A route added to the table changes the page, so a stale page fails the comparison above.
    const document = structuredClone(openApiDocument()) as { paths: Record<string, unknown> };
    document.paths["/v1/new"] = { get: { summary: "New", responses: { "200": { description: "ok" } } } };
    expect(renderApiDoc(document)).not.toBe(page);
  });

  it("docs/cli.md is generated from the CLI's help text (run npm run docs)", () => {
    const page = renderCliDoc();
    expect(checkedIn(CLI_DOC), "docs/cli.md is stale: run npm run docs").toBe(page);
    expect(usageCommands()).toEqual(
      expect.arrayContaining(["dev", "token", "vend", "exec", "task", "tasks", "templates", "audit"]),
    );
    for (const command of usageCommands()) expect(page).toContain(`## jitv ${command}\n\n\`\`\`text\n`);
    expect(renderCliDoc(`${USAGE}  jitv new-command\n`)).not.toBe(page);
  });

  it("COMMAND --help takes each of the command's lines with their continuation lines", () => {
    expect(commandHelp("templates")).toContain("with its access level (!! permissions management, ! write)");
    expect(commandHelp("templates")).not.toContain("jitv policies");
    expect(
      commandHelp("task")
        ?.split("\n")
        .filter((l) => l.trimStart().startsWith("jitv task ")),
    ).toHaveLength(3);
    expect(commandHelp("nope")).toBeUndefined();
  });
});
