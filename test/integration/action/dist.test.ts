import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

// The runner runs the checked-in bundles, not action/src: they must be what the build makes of
// the source today. CI runs this test, so a source change without a rebuild fails there.

const root = resolve(import.meta.dirname, "../../..");

describe("action/dist", () => {
  it("is exactly what scripts/build-action.mjs builds from action/src", async () => {
    const out = mkdtempSync(join(tmpdir(), "jitv-action-dist-"));
    await promisify(execFile)(
      process.execPath,
      [join(root, "scripts", "build-action.mjs"), "--outdir", out],
      {
        cwd: root,
      },
    );
    for (const file of ["main.js", "post.js"]) {
      const built = readFileSync(join(out, file), "utf8");
      const checkedIn = readFileSync(join(root, "action", "dist", file), "utf8");
      expect(checkedIn === built, `action/dist/${file} is stale: run npm run build:action`).toBe(true);
    }
  });
});
