// npm run bench: vend latency and throughput through the whole sandbox core — HTTP, token
// verification (real ES256 tokens, cached JWKS), DynamoDB Local transactions, the in-process
// lifecycle start and the sandbox broker. Prints figures; asserts nothing.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fetchClientCredentialsToken } from "../lib/sandbox/client-credentials.js";
import { startSandbox } from "../lib/sandbox/sandbox.js";

process.env.POWERTOOLS_LOG_LEVEL ??= "ERROR";
const root = resolve(import.meta.dirname, "..");
const sandbox = await startSandbox({
  port: 0,
  issuerPort: 8788,
  templatesDir: join(root, "examples", "templates"),
  rolesDir: join(root, "examples", "roles"),
  stateFile: join(mkdtempSync(join(tmpdir(), "jitv-bench-")), "state.json"),
  // Measure the vend path, not the per-agent rate limit.
  vendRate: { capacity: 10_000, refillPerSecond: 10_000 },
});
const client = sandbox.state.clients["demo-agent"];
if (!client) throw new Error("no demo agent");
const token = () =>
  fetchClientCredentialsToken({
    tokenEndpoint: client.tokenEndpoint,
    clientId: "demo-agent",
    clientSecret: client.secret,
  });

async function vend(bearer: string): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${sandbox.apiUrl}/v1/tasks`, {
    method: "POST",
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
    body: JSON.stringify({ template: "s3-reports-read" }),
  });
  await res.arrayBuffer();
  if (res.status !== 201) throw new Error(`vend answered ${res.status}`);
  return performance.now() - t0;
}

function report(name: string, ms: number[], wallMs: number) {
  const sorted = [...ms].sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]?.toFixed(1);
  console.log(
    `${name.padEnd(28)} n=${ms.length}  p50=${q(0.5)} ms  p95=${q(0.95)} ms  max=${q(1)} ms  throughput=${(
      (ms.length * 1000) / wallMs
    ).toFixed(1)}/s`,
  );
}

try {
  // Tokens are minted up front (each jti vends once): the issuer is not what is measured.
  const warm = await Promise.all(Array.from({ length: 20 }, token));
  for (const t of warm) await vend(t);

  const sequential = await Promise.all(Array.from({ length: 200 }, token));
  let t0 = performance.now();
  const seq: number[] = [];
  for (const t of sequential) seq.push(await vend(t));
  report("vend, sequential", seq, performance.now() - t0);

  const concurrent = await Promise.all(Array.from({ length: 200 }, token));
  t0 = performance.now();
  const conc: number[] = [];
  for (let i = 0; i < concurrent.length; i += 20) {
    conc.push(...(await Promise.all(concurrent.slice(i, i + 20).map(vend))));
  }
  report("vend, 20 concurrent", conc, performance.now() - t0);
} finally {
  await sandbox.close();
  process.exit(0);
}
