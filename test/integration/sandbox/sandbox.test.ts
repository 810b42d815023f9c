import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { DescribeTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, describe, expect, inject, it } from "vitest";
import { startSandbox } from "../../../lib/sandbox/sandbox.js";
import { exampleTemplates, freePort, sandboxVend } from "../../support/sandbox.js";
import { startTestIssuer } from "../../support/test-issuer.js";

const root = resolve(import.meta.dirname, "../../..");
const cli = join(root, "bin", "jitv.mjs");
const run = promisify(execFile);

describe("sandbox with an issuer and templates it has never seen", () => {
  it("vends for that issuer's tokens exactly as the contract says", async () => {
    const foreign = await startTestIssuer({ alg: "RS256" });
    const dir = mkdtempSync(join(tmpdir(), "jitv-sandbox-"));
    const issuersFile = join(dir, "issuers.json");
    writeFileSync(
      issuersFile,
      JSON.stringify({
        issuers: [
          {
            name: "acme-ci",
            issuer: foreign.issuer,
            jwksUri: foreign.jwksUri,
            audiences: ["jitv"],
            algorithms: ["RS256"],
            kind: "agent",
            zone: "workforce",
            claims: { agent: "repository" },
          },
        ],
      }),
    );
    const templates = join(dir, "templates");
    mkdirSync(templates);
    writeFileSync(
      join(templates, "deploy.json"),
      JSON.stringify({
        name: "deploy-artifacts",
        zone: "workforce",
        roleArn: "arn:aws:iam::210987654321:role/jitv/deployer",
        sessionPolicy: {
          Version: "2012-10-17",
          Statement: [
            { Effect: "Allow", Action: "s3:PutObject", Resource: "arn:aws:s3:::artifacts/{{task}}/*" },
          ],
        },
        agents: [{ issuer: foreign.issuer, subjects: ["acme-web"] }],
      }),
    );
    // A state file left by an earlier run, readable by everyone.
    writeFileSync(join(dir, "state.json"), "{}\n", { mode: 0o644 });
    chmodSync(join(dir, "state.json"), 0o644);
    const sandbox = await startSandbox({
      port: 0,
      issuerPort: 0,
      issuersFile,
      templatesDir: templates,
      stateFile: join(dir, "state.json"),
    });
    try {
      expect(sandbox.templates).toEqual(["deploy-artifacts"]);
      const token = await foreign.sign({ sub: "repo:acme/web:ref:refs/heads/main", repository: "acme-web" });
      const res = await fetch(`${sandbox.apiUrl}/v1/tasks`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ template: "deploy-artifacts", purpose: "release 1.2.3" }),
      });
      const body = (await res.json()) as { taskId: string; credentials: { AccessKeyId: string } };
      expect(res.status).toBe(201);
      expect(body).toMatchObject({ status: "active", agent: { issuer: foreign.issuer, id: "acme-web" } });
      expect(body.credentials.AccessKeyId).toMatch(/^JITVSANDBOX/);
      const sent = sandbox.broker.lastRequestFor(body.taskId);
      expect(sent).toEqual({
        roleArn: "arn:aws:iam::210987654321:role/jitv/deployer",
        roleSessionName: body.taskId,
        sourceIdentity: "acme-web",
        policy: JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            { Effect: "Allow", Action: "s3:PutObject", Resource: `arn:aws:s3:::artifacts/${body.taskId}/*` },
          ],
        }),
        tags: [
          { Key: "jitv:task", Value: body.taskId },
          { Key: "jitv:agent", Value: "acme-web" },
          { Key: "jitv:template", Value: "deploy-artifacts" },
        ],
        durationSeconds: 900,
      });
      // The state file holds demo secrets: only its owner may read it.
      const stateFile = join(dir, "state.json");
      expect(readFileSync(stateFile, "utf8")).toContain("demo-agent");
      expect(statSync(stateFile).mode & 0o777).toBe(0o600);
    } finally {
      await sandbox.close();
      await foreign.close();
    }
  });

  it("refuses to start with an invalid template, naming the file, and leaves nothing running", async () => {
    const dir = mkdtempSync(join(tmpdir(), "jitv-sandbox-"));
    writeFileSync(join(dir, "bad.json"), JSON.stringify({ name: "Bad Name" }));
    await expect(
      startSandbox({ port: 0, issuerPort: 0, templatesDir: dir, stateFile: join(dir, "state.json") }),
    ).rejects.toThrow(/bad\.json: invalid template: name/);
  });
});

describe("npm start as a new user runs it", () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill("SIGKILL");
  });

  it("prints the next commands, which return sandbox credentials; Ctrl-C stops DynamoDB Local too", {
    timeout: 90_000,
  }, async () => {
    const [apiPort, issuerPort, dynamodbPort] = [await freePort(), await freePort(), await freePort()];
    const dir = mkdtempSync(join(tmpdir(), "jitv-cli-"));
    // The example templates name the default issuer port; point copies at this run's port.
    const { dir: templates, names: exampleNames } = exampleTemplates(dir, issuerPort);
    const env = { ...process.env, JITV_STATE_FILE: join(dir, "state.json"), POWERTOOLS_LOG_LEVEL: "WARN" };
    child = spawn(
      process.execPath,
      [
        cli,
        "dev",
        "--port",
        String(apiPort),
        "--issuer-port",
        String(issuerPort),
        "--dynamodb-port",
        String(dynamodbPort),
        "--templates",
        templates,
      ],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout?.on("data", (d) => {
      output += d;
    });
    child.stderr?.on("data", (d) => {
      output += d;
    });
    await expect.poll(() => output, { timeout: 45_000, interval: 200 }).toContain("Ctrl-C stops everything");
    expect(output).toContain(`API              http://127.0.0.1:${apiPort}`);
    // Every example template was validated and put, the customer-zone ones included.
    expect(exampleNames).toEqual(expect.arrayContaining(["tenant-reports-list", "tenant-reports-read"]));
    expect(output).toContain(`Templates        ${exampleNames.join(", ")}\n`);
    expect(output).toContain("npx jitv token --agent demo-agent");
    expect(output).toContain("npx jitv vend --template s3-reports-read");

    // The printed next commands, as a user would run them.
    const { stdout: token } = await run(process.execPath, [cli, "token", "--agent", "demo-agent"], { env });
    const { stdout: vended } = await run(
      process.execPath,
      [cli, "vend", "--template", "s3-reports-read", "--purpose", "try jitv"],
      { env: { ...env, JITV_TOKEN: token.trim(), JITV_API: `http://127.0.0.1:${apiPort}` } },
    );
    const task = JSON.parse(vended);
    expect(task).toMatchObject({
      status: "active",
      template: "s3-reports-read",
      agent: { id: "demo-agent" },
    });
    expect(task.credentials.AccessKeyId).toMatch(/^JITVSANDBOX/);

    // credential_process output for AWS SDKs.
    const { stdout: processOut } = await run(
      process.execPath,
      [
        cli,
        "credential-process",
        "--template",
        "logs-read",
        "--param",
        "service=billing",
        "--token-command",
        `"${process.execPath}" "${cli}" token --agent demo-agent`,
        "--api",
        `http://127.0.0.1:${apiPort}`,
      ],
      { env },
    );
    expect(JSON.parse(processOut)).toEqual({
      Version: 1,
      AccessKeyId: expect.stringMatching(/^JITVSANDBOX/),
      SecretAccessKey: expect.any(String),
      SessionToken: expect.any(String),
      Expiration: expect.any(String),
    });

    // The README's lifecycle walk-through: allowed, complete, denied, secret rotated.
    const agentEnv = { ...env, JITV_TOKEN: token.trim(), JITV_API: `http://127.0.0.1:${apiPort}` };
    const jitv = async (...args: string[]) =>
      JSON.parse((await run(process.execPath, [cli, ...args], { env: agentEnv })).stdout);
    const secretVersion = async () => {
      const res = await fetch(`http://127.0.0.1:${apiPort}/v1/sandbox/secrets/jitv-demo%2Freporting-db`);
      return ((await res.json()) as { versionId: string }).versionId;
    };
    const { stdout: fresh } = await run(process.execPath, [cli, "token", "--agent", "demo-agent"], { env });
    agentEnv.JITV_TOKEN = fresh.trim(); // a token's jti vends once
    const db = await jitv("vend", "--template", "db-maintenance", "--purpose", "rotate me");
    const secretArn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jitv-demo/reporting-db-a1B2c3";
    expect(await jitv("simulate", db.taskId, "secretsmanager:GetSecretValue", secretArn)).toMatchObject({
      allowed: true,
    });
    const versionBefore = await secretVersion();
    expect(await jitv("task", "complete", db.taskId)).toEqual({ taskId: db.taskId, status: "completed" });
    await expect
      .poll(
        async () => (await jitv("simulate", db.taskId, "secretsmanager:GetSecretValue", secretArn)).decision,
        {
          timeout: 10_000,
        },
      )
      .toBe("ExplicitlyDenied");
    await expect.poll(secretVersion, { timeout: 10_000 }).not.toBe(versionBefore);

    const exited = new Promise<number | null>((r) => child?.once("exit", (code) => r(code)));
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(output).toContain("Stopped.");
    // DynamoDB Local is gone: its port refuses connections.
    await expect(fetch(`http://127.0.0.1:${dynamodbPort}`)).rejects.toThrow();
  });
});

describe("sandbox on an already running DynamoDB Local (--dynamodb-endpoint)", () => {
  it("uses it instead of starting one, and leaves it running when stopped", async () => {
    const endpoint = inject("dynamodbEndpoint");
    const dir = mkdtempSync(join(tmpdir(), "jitv-sandbox-"));
    const issuerPort = await freePort();
    const templates = exampleTemplates(dir, issuerPort, ["s3-reports-read.json"]).dir;
    const sandbox = await startSandbox({
      port: 0,
      issuerPort,
      dynamodbEndpoint: endpoint,
      templatesDir: templates,
      rolesDir: join(root, "examples", "roles"),
      stateFile: join(dir, "state.json"),
    });
    try {
      expect(sandbox.dynamodbEndpoint).toBe(endpoint);
      const res = await sandboxVend(sandbox, "demo-agent", { template: "s3-reports-read" });
      expect(res.status).toBe(201);
    } finally {
      await sandbox.close();
    }
    // Still serving: the sandbox did not own it.
    const client = new DynamoDBClient({
      endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    });
    const table = await client.send(new DescribeTableCommand({ TableName: "jitv-sandbox" }));
    expect(table.Table?.TableStatus).toBe("ACTIVE");
    client.destroy();
  });

  it("refuses an endpoint that is not on this machine", async () => {
    await expect(
      startSandbox({
        port: 0,
        issuerPort: await freePort(),
        dynamodbEndpoint: "https://dynamodb.us-east-1.amazonaws.com",
        stateFile: join(mkdtempSync(join(tmpdir(), "jitv-sandbox-")), "state.json"),
      }),
    ).rejects.toThrow("--dynamodb-endpoint: must be http(s) on 127.0.0.1, localhost or [::1]");
  });
});
