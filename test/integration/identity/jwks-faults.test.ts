import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Logger } from "@aws-lambda-powertools/logger";
import type { JWTPayload } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryAuditLog } from "../../../lib/audit/logger-audit-log.js";
import { SandboxBroker } from "../../../lib/credentials/sandbox-broker.js";
import { InvalidTokenError, UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import { parseTemplate } from "../../../lib/domain/template.js";
import { composeApi } from "../../../lib/http/compose-api.js";
import { parseIssuerConfig } from "../../../lib/identity/issuers.js";
import { RemoteJwks } from "../../../lib/identity/jwks.js";
import { TokenVerifier } from "../../../lib/identity/verifier.js";
import { apiClient } from "../../support/api-client.js";
import { createTestTable } from "../../support/dynamodb.js";
import { freePort } from "../../support/sandbox.js";
import { startTestIssuer, type TestIssuer } from "../../support/test-issuer.js";

// JWKS faults (issue 14): a real JWKS server on 127.0.0.1 that is slow, oversized, down or gone,
// rotates its key, and is flooded with unknown kids — seen through the TokenVerifier (and once
// through the HTTP API). Time is a test clock for cooldowns and cache age; the network is real.

type Mode = "ok" | "slow" | "huge" | "huge-chunked" | "down";
const HUGE_BYTES = 64 * 1024 * 1024;

/** A JWKS endpoint serving the test issuer's current public key, misbehaving on demand. */
interface FaultyJwks {
  readonly uri: string;
  mode: Mode;
  /** GET requests received. */
  requests: number;
  /** Body bytes the server managed to write for oversized answers before the client hung up. */
  hugeBytesWritten: number;
  close(): Promise<void>;
}

async function startFaultyJwks(idp: TestIssuer): Promise<FaultyJwks> {
  const state: FaultyJwks = {
    uri: "",
    mode: "ok",
    requests: 0,
    hugeBytesWritten: 0,
    close: async () => undefined,
  };
  const server: Server = createServer((_req, res) => {
    state.requests++;
    switch (state.mode) {
      case "ok":
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ keys: [idp.publicJwk] }));
        return;
      case "slow":
        // Answers long after any sane timeout (the test would hang if the verifier waited).
        setTimeout(() => res.writeHead(200).end(JSON.stringify({ keys: [idp.publicJwk] })), 60_000).unref();
        return;
      case "down":
        res.writeHead(503).end("unavailable");
        return;
      default: {
        // A JWKS "document" far over the 64 KiB cap, streamed until the client hangs up.
        res.writeHead(
          200,
          state.mode === "huge"
            ? { "content-type": "application/json", "content-length": String(HUGE_BYTES) }
            : { "content-type": "application/json" },
        );
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        res.write('{"keys":[');
        const pump = () => {
          while (!res.destroyed && state.hugeBytesWritten < HUGE_BYTES) {
            state.hugeBytesWritten += chunk.length;
            if (!res.write(chunk)) return void res.once("drain", pump);
          }
          if (!res.destroyed) res.end("]}");
        };
        pump();
      }
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    uri: `http://127.0.0.1:${port}/jwks.json`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
}

let clockMs = Date.now();
const clock = () => new Date(clockMs);
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** The issuer, its faulty JWKS, and a verifier whose JWKS cache uses a short timeout and the test clock. */
async function setup(options: { jwksUri?: string } = {}) {
  clockMs = Date.now();
  const idp = await startTestIssuer({ alg: "ES256" });
  const jwks = await startFaultyJwks(idp);
  closers.push(idp.close, jwks.close);
  const profile = idp.profile({ jwksUri: options.jwksUri ?? jwks.uri });
  const verifier = new TokenVerifier({
    config: parseIssuerConfig({ issuers: [profile] }),
    now: clock,
    jwks: (p) => new RemoteJwks(p, { timeoutMs: 500, cooldownMs: 30_000, now: clock }).getKey,
  });
  // Tokens are dated on the test clock, so moving it does not expire them.
  const sign = (claims: JWTPayload = {}, header?: Record<string, unknown>) => {
    const iat = Math.floor(clockMs / 1000);
    return idp.sign({ iat, exp: iat + 300, sub: "agent-a", ...claims }, header ? { header } : {});
  };
  return { idp, jwks, verifier, sign };
}

describe("JWKS faults, through the token verifier", () => {
  it("a JWKS slower than the timeout fails closed with upstream_unavailable instead of hanging", async () => {
    const { jwks, verifier, sign } = await setup();
    jwks.mode = "slow";
    await expect(verifier.verify(await sign())).rejects.toBeInstanceOf(UpstreamUnavailableError);
    expect(jwks.requests).toBe(1);
  });

  it.each(["huge", "huge-chunked"] as const)(
    "an oversized JWKS (%s) is refused after a bounded read",
    async (mode) => {
      const { jwks, verifier, sign } = await setup();
      jwks.mode = mode;
      await expect(verifier.verify(await sign())).rejects.toBeInstanceOf(UpstreamUnavailableError);
      // The verifier hung up long before the 64 MiB body was sent (socket buffers hold a few MiB).
      await expect.poll(() => jwks.hugeBytesWritten).toBeLessThan(HUGE_BYTES / 4);
    },
  );

  it("an unreachable JWKS fails closed with upstream_unavailable; once it is back, tokens verify", async () => {
    const port = await freePort(); // nothing listens there
    const { verifier, sign } = await setup({ jwksUri: `http://127.0.0.1:${port}/jwks.json` });
    const error = await verifier.verify(await sign()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamUnavailableError);
    expect((error as Error).message).not.toContain("eyJ"); // no token in the message
  });

  it("an IdP outage with nothing cached costs one fetch per failure cooldown, then recovers", async () => {
    const { jwks, verifier, sign } = await setup();
    jwks.mode = "down";
    for (let i = 0; i < 20; i++) {
      await expect(verifier.verify(await sign())).rejects.toBeInstanceOf(UpstreamUnavailableError);
    }
    expect(jwks.requests).toBe(1);
    jwks.mode = "ok";
    clockMs += 30_000;
    await expect(verifier.verify(await sign())).resolves.toMatchObject({ id: "agent-a" });
    expect(jwks.requests).toBe(2);
  });

  it("picks up a rotated key (new kid) without a restart", async () => {
    const { idp, jwks, verifier, sign } = await setup();
    await expect(verifier.verify(await sign())).resolves.toMatchObject({ id: "agent-a" });
    await idp.rotate();
    clockMs += 30_000; // past the refetch cooldown of the first fetch
    await expect(verifier.verify(await sign())).resolves.toMatchObject({ id: "agent-a" });
    expect(jwks.requests).toBe(2);
  });

  it("holds a flood of unknown kids to one JWKS fetch per cooldown", async () => {
    const { jwks, verifier, sign } = await setup();
    await expect(verifier.verify(await sign())).resolves.toMatchObject({ id: "agent-a" });
    const flood = async () => {
      const tokens = await Promise.all(Array.from({ length: 200 }, () => sign({}, { kid: randomUUID() })));
      const results = await Promise.allSettled(tokens.map((t) => verifier.verify(t)));
      for (const r of results) {
        expect(r.status).toBe("rejected");
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(InvalidTokenError);
      }
    };
    clockMs += 30_000;
    await flood();
    expect(jwks.requests).toBe(2); // the first fetch, then one refetch for the whole flood
    await flood();
    expect(jwks.requests).toBe(2); // still within the cooldown
    clockMs += 30_000;
    await flood();
    expect(jwks.requests).toBe(3);
    // Genuine tokens still verify throughout.
    await expect(verifier.verify(await sign())).resolves.toMatchObject({ id: "agent-a" });
  });

  it("keeps verifying from a warm cache through an IdP outage, even past the cache's max age", async () => {
    const { jwks, verifier, sign } = await setup();
    await expect(verifier.verify(await sign())).resolves.toMatchObject({ id: "agent-a" });
    for (const mode of ["down", "slow"] as const) {
      jwks.mode = mode;
      clockMs += 11 * 60_000; // older than the 10-minute max age: a refresh is tried, and fails
      await expect(verifier.verify(await sign())).resolves.toMatchObject({ id: "agent-a" });
      await expect(verifier.verify(await sign())).resolves.toMatchObject({ id: "agent-a" });
    }
    await jwks.close(); // gone entirely
    clockMs += 11 * 60_000;
    await expect(verifier.verify(await sign())).resolves.toMatchObject({ id: "agent-a" });
  });
});

describe("JWKS faults, through the HTTP API", () => {
  it("vends 503 upstream_unavailable (nothing issued) while the IdP is down cold, and 201 from a warm cache", async () => {
    const { jwks, idp, sign } = await setup();
    const table = await createTestTable();
    const core = composeApi({
      doc: table.doc,
      tableName: table.tableName,
      issuers: parseIssuerConfig({ issuers: [idp.profile({ jwksUri: jwks.uri })] }),
      broker: new SandboxBroker(),
      lifecycle: { start: async () => undefined },
      tokens: { sendSuccess: async () => undefined },
      logger: new Logger({ serviceName: "jitv-test", logLevel: "CRITICAL" }),
      audit: new MemoryAuditLog(),
      targetAccounts: ["123456789012"],
      now: clock,
    });
    await core.templates.put(
      parseTemplate({
        name: "read",
        zone: "workforce",
        roleArn: "arn:aws:iam::123456789012:role/jitv/reader",
        sessionPolicy: {
          Version: "2012-10-17",
          Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::data/*" }],
        },
        agents: [{ issuer: idp.issuer, subjects: ["agent-a"] }],
      }),
    );
    const call = apiClient(() => core.api);
    jwks.mode = "down";
    const cold = await call("POST", "/v1/tasks", { token: await sign(), body: { template: "read" } });
    expect(cold.status).toBe(503);
    expect(cold.json).toEqual({ error: { code: "upstream_unavailable", message: expect.any(String) } });
    jwks.mode = "ok";
    clockMs += 30_000; // past the failure cooldown
    const warm = await call("POST", "/v1/tasks", { token: await sign(), body: { template: "read" } });
    expect(warm.status).toBe(201);
    jwks.mode = "down";
    const outage = await call("POST", "/v1/tasks", { token: await sign(), body: { template: "read" } });
    expect(outage.status).toBe(201);
    expect(outage.json.credentials.AccessKeyId).toMatch(/^JITVSANDBOX/);
  });
});
