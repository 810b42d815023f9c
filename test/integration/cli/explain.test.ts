import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

// `jitv templates explain FILE` as run from a shell: no table, no API, only the template and the IAM data.

const root = resolve(import.meta.dirname, "../../..");
const cli = join(root, "bin", "jitv.mjs");
const run = promisify(execFile);
const jitv = (...args: string[]) =>
  run(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH ?? "" }, timeout: 60_000 }).then(
    (ok) => ({ code: 0, ...ok }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );

describe("jitv templates explain FILE", () => {
  it("lists each statement's resources and actions with their access levels, exit 0", async () => {
    const res = await jitv(
      "templates",
      "explain",
      join(root, "examples", "templates", "tenant-reports-read.json"),
    );
    expect(res).toMatchObject({ code: 0, stderr: "" });
    const lines = res.stdout.split("\n");
    expect(lines[0]).toBe(
      "tenant-reports-read: customer zone, role arn:aws:iam::123456789012:role/jitv/tenant-reports-reader",
    );
    expect(lines).toEqual(
      expect.arrayContaining([
        "statement 1 (ReadTenantReports), Allow: allows the listed actions on the listed resources",
        "  resource arn:aws:s3:::jitv-demo-tenant-data/{{tenant}}/{{params.prefix}}/*",
        "  actions: s3:GetObject → 1 documented action",
        `     ${"s3:GetObject".padEnd(48)} Read`,
        "statement 2 (ListTenantReports), Allow: allows the listed actions on the listed resources, only while the condition holds",
        '  condition {"StringLike":{"s3:prefix":["{{tenant}}/{{params.prefix}}/*"]}}',
        `     ${"s3:ListBucket".padEnd(48)} List`,
        "summary: allows 2 actions: 1 Read, 1 List; no write or permissions-management access",
      ]),
    );
  });

  it("flags permissions management and write access; --json gives the same explanation", async () => {
    const dir = mkdtempSync(join(tmpdir(), "jitv-explain-"));
    const file = join(dir, "too-broad.json");
    writeFileSync(
      file,
      JSON.stringify({
        name: "too-broad",
        zone: "workforce",
        roleArn: "arn:aws:iam::123456789012:role/jitv/too-broad",
        sessionPolicy: {
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Action: ["iam:*", "s3:PutObject"], Resource: "*" }],
        },
        agents: [{ issuer: "https://agents.example", subjects: ["a"] }],
      }),
    );
    const text = await jitv("templates", "explain", file);
    expect(text.code).toBe(0);
    const lines = text.stdout.split("\n");
    expect(lines).toContain(`  !! ${"iam:PutRolePolicy".padEnd(48)} Permissions management`);
    expect(lines).toContain(`  !  ${"s3:PutObject".padEnd(48)} Write`);
    expect(lines.find((l) => l.startsWith("!! permissions management: "))).toContain("iam:AttachRolePolicy");

    const json = await jitv("templates", "explain", file, "--json");
    const explained = JSON.parse(json.stdout);
    expect(explained.allowed.permissionsManagement).toContain("iam:PutRolePolicy");
    expect(explained.allowed.write).toContain("s3:PutObject");
  });

  it("names a file that is not a template, exit 1", async () => {
    const res = await jitv("templates", "explain", join(root, "package.json"));
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^jitv: .*package\.json: invalid template: /);
  });
});
