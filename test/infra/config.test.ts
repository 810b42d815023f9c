import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { App } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import { buildVendingApp } from "../../infra/build-app.js";
import { readDeployConfig } from "../../infra/config.js";
import { ConfigError } from "../../lib/domain/errors.js";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const read = (context: Record<string, unknown>) => readDeployConfig((key) => context[key], REPO);

function issuersFile(content: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), "jitv-issuers-")), "issuers.json");
  writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}

describe("readDeployConfig", () => {
  it("fills defaults around a valid issuers file, resolved against the working directory", () => {
    const config = read({ issuersFile: "examples/issuers.json" });
    expect(config).toMatchObject({
      issuersFile: join(REPO, "examples/issuers.json"),
      stage: "dev",
      rolePath: "/jitv/",
      apiRateLimit: 50,
      apiBurstLimit: 100,
      vendRateLimit: 10,
      vendBurstLimit: 20,
      logRetentionDays: 365,
      lifecycleConcurrency: 10,
    });
    expect(config.issuers.issuers.map((i) => i.name)).toEqual([
      "github-actions",
      "support-agents",
      "workforce-idp",
      "customer-idp",
    ]);
    expect(config.allowedRoleArns).toBeUndefined();
    expect(config.wafAclArn).toBeUndefined();
  });

  it("requires issuersFile and says how to pass it", () => {
    expect(() => read({})).toThrow(ConfigError);
    expect(() => read({})).toThrow(/issuersFile: required; pass -c issuersFile=/);
  });

  it("reports the issuers loader's own error, naming the field", () => {
    const file = issuersFile({
      issuers: [
        {
          name: "ci",
          issuer: "https://ci.example",
          jwksUri: "https://ci.example/jwks",
          audiences: ["jitv"],
          algorithms: ["HS256"],
          kind: "agent",
          zone: "workforce",
        },
      ],
    });
    expect(() => read({ issuersFile: file })).toThrow(
      /issuersFile: .*issuers\[0\]\.algorithms\[0\]: HS256 is symmetric/,
    );
    expect(() => read({ issuersFile: "does/not/exist.json" })).toThrow(
      /issuersFile: cannot read issuers file/,
    );
  });

  it("lists every invalid value at once", () => {
    let message = "";
    try {
      read({
        issuersFile: "examples/issuers.json",
        stage: "Prod",
        rolePath: "/",
        allowedRoleArns: "arn:aws:iam::123456789012:role/*, not-an-arn",
        alarmEmail: "oncall",
        wafAclArn: "arn:aws:wafv2:eu-west-1:123456789012:global/webacl/x/y",
        apiRateLimit: "fast",
        vendRateLimit: 500,
        logRetentionDays: 42,
        lifecycleConcurrency: -1,
      });
    } catch (error) {
      message = (error as Error).message;
    }
    for (const key of [
      "stage:",
      "rolePath:",
      "allowedRoleArns: not IAM role ARNs (wildcards are not accepted; use rolePath): arn:aws:iam::123456789012:role/*, not-an-arn",
      "alarmEmail:",
      "wafAclArn:",
      'apiRateLimit: must be a whole number from 1 to 10000, got "fast"',
      "vendRateLimit: 500 exceeds apiRateLimit 50",
      "logRetentionDays: CloudWatch Logs accepts only",
      "lifecycleConcurrency:",
    ]) {
      expect(message).toContain(key);
    }
  });

  it("accepts explicit role ARNs, a path below the root, numbers from the command line", () => {
    const config = read({
      issuersFile: "examples/issuers.json",
      rolePath: "/agents/jitv/",
      allowedRoleArns: "arn:aws:iam::123456789012:role/jitv/a, arn:aws:iam::123456789012:role/team/b",
      apiRateLimit: "200",
      vendBurstLimit: 7,
      lifecycleConcurrency: "0",
    });
    expect(config.rolePath).toBe("/agents/jitv/");
    expect(config.allowedRoleArns).toEqual([
      "arn:aws:iam::123456789012:role/jitv/a",
      "arn:aws:iam::123456789012:role/team/b",
    ]);
    expect(config.apiRateLimit).toBe(200);
    expect(config.vendBurstLimit).toBe(7);
    expect(config.lifecycleConcurrency).toBe(0);
  });
});

describe("the CDK app", () => {
  it("refuses to build without a valid context, before any function is bundled", () => {
    const app = new App();
    expect(() => buildVendingApp(app)).toThrow(ConfigError);
    expect(app.node.children).toHaveLength(0);
  });

  it("infra/app.ts exits 1 with the problem and no stack trace", () => {
    const bad = issuersFile("{ not json");
    let stderr = "";
    let status = 0;
    try {
      execFileSync(join(REPO, "node_modules/.bin/tsx"), ["infra/app.ts"], {
        cwd: REPO,
        env: { ...process.env, CDK_CONTEXT_JSON: JSON.stringify({ issuersFile: bad }) },
        encoding: "utf8",
        stdio: "pipe",
      });
    } catch (error) {
      const failure = error as { status: number; stderr: string };
      status = failure.status;
      stderr = failure.stderr;
    }
    expect(status).toBe(1);
    expect(stderr).toContain(
      `jitv: invalid jitv deployment context:\n  - issuersFile: issuers file ${bad} is not valid JSON`,
    );
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
