import { readFileSync } from "node:fs";
import { JitvError } from "../domain/errors.js";
import { lintTemplate } from "../domain/render.js";
import { parseTemplate } from "../domain/template.js";

/** `jitv templates lint FILE...`: the same checks as a template write, without storing anything. */
export async function templatesCommand(argv: string[]): Promise<number> {
  const [sub, ...files] = argv;
  if (sub !== "lint" || files.length === 0) throw new Error("usage: jitv templates lint FILE...");
  let failures = 0;
  for (const file of files) {
    try {
      const template = parseTemplate(JSON.parse(readFileSync(file, "utf8")));
      lintTemplate(template);
      process.stdout.write(`ok    ${file} (${template.name}, ${template.zone} zone)\n`);
    } catch (err) {
      failures++;
      const message = err instanceof JitvError || err instanceof SyntaxError ? err.message : String(err);
      process.stdout.write(`fail  ${file}: ${message}\n`);
    }
  }
  return failures === 0 ? 0 : 1;
}
