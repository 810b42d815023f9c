import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../../support/sandbox.js";
import { killSandboxGroup, type SandboxProcess, startSandboxProcess } from "../../support/sandbox-process.js";

// `jitv dev --issuer-port N` with templates (or an issuers file) naming the default 8788 starts, and
// every vend of those templates would be 403: it says so at start, one line each.

const examples = resolve(import.meta.dirname, "../../../examples/templates");
const dir = mkdtempSync(join(tmpdir(), "jitv-issuer-port-"));
let running: SandboxProcess | undefined;

afterAll(async () => {
  if (running) {
    killSandboxGroup(running.child);
    await running.exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("jitv dev --issuer-port other than the templates'", () => {
  it("warns, naming each template, the port it names and --issuer-port", { timeout: 90_000 }, async () => {
    const issuerPort = await freePort();
    // An issuers file with a local IdP of its own on another port (configured: not flagged) and an
    // admins rule naming the default local issuer (flagged).
    const issuersFile = join(dir, "issuers.json");
    const ownIdp = `http://127.0.0.1:${await freePort()}/own-idp`;
    writeFileSync(
      issuersFile,
      JSON.stringify({
        issuers: [
          {
            name: "own-idp",
            issuer: ownIdp,
            jwksUri: `${ownIdp}/jwks`,
            audiences: ["jitv"],
            algorithms: ["ES256"],
            kind: "user",
            zone: "workforce",
            claims: { user: "sub" },
          },
        ],
        admins: [
          { issuer: ownIdp, claim: "groups", values: ["ops"] },
          { issuer: "http://127.0.0.1:8788/staff", claim: "groups", values: ["ops"] },
        ],
      }),
    );
    running = await startSandboxProcess(
      ["--port", String(await freePort()), "--issuer-port", String(issuerPort), "--issuers", issuersFile],
      { stateFile: join(dir, "state.json") },
    );
    const templates = readdirSync(examples).map(
      (file) => (JSON.parse(readFileSync(join(examples, file), "utf8")) as { name: string }).name,
    );
    // Printed on stderr right after the banner: wait for them rather than race the pipe.
    const sandbox = running;
    const warningLines = () =>
      sandbox
        .output()
        .split("\n")
        .filter((line) => line.startsWith("jitv: warning: "));
    await expect.poll(() => warningLines().length, { timeout: 10_000 }).toBe(templates.length + 1);
    const warnings = warningLines();
    expect(warnings).toContain(
      `jitv: warning: template s3-reports-read names issuer http://127.0.0.1:8788/agents (port 8788), but the sandbox's issuers listen on port ${issuerPort}: its vends will be refused; start with --issuer-port 8788 or edit the template`,
    );
    for (const name of templates) expect(warnings.join("\n")).toContain(`template ${name} names issuer`);
    expect(warnings.at(-1)).toContain(
      "the issuers file's admins/approvers name issuer http://127.0.0.1:8788/staff (port 8788)",
    );
  });
});
