import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { createTestTable, type TestTable } from "../../support/dynamodb.js";

// The security team's CLI against a real table (DynamoDB Local), as run from a shell.

const root = resolve(import.meta.dirname, "../../..");
const cli = join(root, "bin", "jitv.mjs");
const run = promisify(execFile);
let table: TestTable;

const jitv = (...args: string[]) =>
  run(
    process.execPath,
    [cli, ...args, "--table", table.tableName, "--endpoint", inject("dynamodbEndpoint")],
    {
      timeout: 60_000,
    },
  );

beforeAll(async () => {
  table = await createTestTable();
});

describe("jitv templates / policies against a table", () => {
  it("keeps the AWS SDK's Node-version notice off its output, even when the SDK would print it", async () => {
    // The tests turn the notice off for every process (vitest.config.ts); a user's shell does not.
    const { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: _, ...env } = process.env;
    const listed = await run(
      process.execPath,
      [cli, "templates", "list", "--table", table.tableName, "--endpoint", inject("dynamodbEndpoint")],
      { timeout: 60_000, env },
    );
    expect(listed.stderr).toBe("");
  });

  it("puts, lists and shows templates; a bad file stores nothing", async () => {
    const examples = join(root, "examples", "templates");
    const put = await jitv(
      "templates",
      "put",
      join(examples, "s3-reports-read.json"),
      join(examples, "logs-read.json"),
    );
    expect(put.stdout).toBe("put   s3-reports-read\nput   logs-read\n");
    expect((await jitv("templates", "list")).stdout).toContain("logs-read\tworkforce\t");
    const shown = JSON.parse((await jitv("templates", "show", "s3-reports-read")).stdout);
    expect(shown).toMatchObject({ name: "s3-reports-read", zone: "workforce" });

    const dir = mkdtempSync(join(tmpdir(), "jitv-cli-"));
    writeFileSync(
      join(dir, "bad.json"),
      JSON.stringify({ ...shown, name: "bad-one", sessionPolicy: { Version: "2012-10-17", Statement: [] } }),
    );
    const failed = await jitv(
      "templates",
      "put",
      join(examples, "db-maintenance.json"),
      join(dir, "bad.json"),
    ).catch((err: { code: number; stderr: string }) => err);
    expect(failed).toMatchObject({ code: 1, stderr: expect.stringContaining("bad.json: invalid template") });
    expect((await jitv("templates", "list")).stdout).not.toContain("db-maintenance");
  });

  it("refuses a template whose role is outside the deployment's target accounts (--accounts)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "jitv-cli-"));
    const template = join(dir, "accounts-check.json");
    const example = JSON.parse(readFileSync(join(root, "examples", "templates", "logs-read.json"), "utf8"));
    writeFileSync(template, JSON.stringify({ ...example, name: "accounts-check" }));
    const refused = await jitv("templates", "put", template, "--accounts", "210987654321").catch(
      (err: { code: number; stderr: string }) => err,
    );
    expect(refused).toMatchObject({
      code: 1,
      stderr: expect.stringContaining("account 123456789012, which is not a registered target account"),
    });
    expect((await jitv("templates", "list")).stdout).not.toContain("accounts-check");
    const linted = await run(process.execPath, [
      cli,
      "templates",
      "lint",
      template,
      "--accounts",
      "210987654321",
    ]).catch((err: { code: number; stdout: string }) => err);
    expect(linted).toMatchObject({
      code: 1,
      stdout: expect.stringContaining("not a registered target account"),
    });
    expect((await jitv("templates", "put", template, "--accounts", "123456789012,210987654321")).stdout).toBe(
      "put   accounts-check\n",
    );
  });

  it("stores versioned policy sets, refusing invalid Cedar and stale versions", async () => {
    const policy = join(root, "examples", "policies", "approvals.cedar");
    expect((await jitv("policies", "put", "approvals", policy)).stdout).toBe("put   approvals version 1\n");
    expect((await jitv("policies", "list")).stdout).toContain("approvals\tversion 1\tapproval-needs-purpose");
    const stale = await jitv("policies", "put", "approvals", policy, "--expected-version", "0").catch(
      (err: { code: number }) => err,
    );
    expect(stale).toMatchObject({ code: 1 });
    const dir = mkdtempSync(join(tmpdir(), "jitv-cli-"));
    writeFileSync(join(dir, "broken.cedar"), 'permit (principal, action == Jitv::Action::"Fly", resource);');
    const broken = await jitv("policies", "put", "broken", join(dir, "broken.cedar")).catch(
      (err: { code: number; stderr: string }) => err,
    );
    expect(broken).toMatchObject({ code: 1, stderr: expect.stringContaining("broken.cedar") });
    expect((await jitv("policies", "show", "approvals")).stdout).toContain('@id("approval-needs-purpose")');
  });

  it("explains a stored template by name; an unknown name is one line pointing at the list, exit 1", async () => {
    await jitv("templates", "put", join(root, "examples", "templates", "prod-db-admin.json"));
    const explained = await jitv("templates", "explain", "prod-db-admin");
    const lines = explained.stdout.split("\n");
    expect(lines[0]).toBe(
      "prod-db-admin: workforce zone, role arn:aws:iam::123456789012:role/jitv/prod-db-admin",
    );
    expect(lines).toContain(`  !  ${"rds:ModifyDBCluster".padEnd(48)} Write`);
    expect(lines).toContain("!  write: rds:ModifyDBCluster, rds:RebootDBInstance");

    const unknown = await jitv("templates", "explain", "no-such-template").catch(
      (err: { code: number; stdout: string; stderr: string }) => err,
    );
    expect(unknown).toMatchObject({
      code: 1,
      stdout: "",
      stderr: "jitv: no template no-such-template: jitv templates list shows the stored ones\n",
    });
  });
});
