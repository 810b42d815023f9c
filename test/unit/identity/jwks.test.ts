import { createServer, type RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { InvalidTokenError, UpstreamUnavailableError } from "../../../lib/domain/errors.js";
import { RemoteJwks } from "../../../lib/identity/jwks.js";
import { startTestIssuer, type TestIssuer } from "../../support/test-issuer.js";

interface TestServer {
  readonly url: string;
  requests(): number;
  close(): Promise<void>;
}

async function startServer(handler: RequestListener): Promise<TestServer> {
  let requests = 0;
  const server = createServer((req, res) => {
    requests += 1;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    requests: () => requests,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A clock the test moves by hand. */
function manualClock(start = Date.parse("2030-01-01T00:00:00Z")) {
  let now = start;
  return {
    now: () => new Date(now),
    advance: (ms: number) => {
      now += ms;
    },
  };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: unknown) => error as Error,
  );
}

let issuer: TestIssuer;
const servers: TestServer[] = [];

beforeEach(async () => {
  issuer = await startTestIssuer();
});

afterEach(async () => {
  await issuer.close();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

describe("RemoteJwks", () => {
  it("fetches once and serves later lookups from the cache", async () => {
    const jwks = new RemoteJwks(issuer.profile());
    const header = { alg: "RS256", kid: issuer.kid };
    const key = await jwks.getKey(header);
    expect(key).toMatchObject({ type: "public" });
    await jwks.getKey(header);
    await jwks.getKey(header);
    expect(issuer.jwksRequests()).toBe(1);
  });

  it("shares one fetch between concurrent first lookups", async () => {
    const jwks = new RemoteJwks(issuer.profile());
    const header = { alg: "RS256", kid: issuer.kid };
    await Promise.all(Array.from({ length: 5 }, () => jwks.getKey(header)));
    expect(issuer.jwksRequests()).toBe(1);
  });

  it("refetches once for an unknown kid, then not again within the cooldown", async () => {
    const clock = manualClock();
    const jwks = new RemoteJwks(issuer.profile(), { now: clock.now });
    await jwks.getKey({ alg: "RS256", kid: issuer.kid });
    clock.advance(30_000);

    const first = await rejection(jwks.getKey({ alg: "RS256", kid: "unknown-1" }));
    expect(first).toBeInstanceOf(InvalidTokenError);
    expect(first.message).toBe("token signed with an unknown key");
    expect(issuer.jwksRequests()).toBe(2);

    clock.advance(29_999);
    await rejection(jwks.getKey({ alg: "RS256", kid: "unknown-2" }));
    expect(issuer.jwksRequests()).toBe(2);

    clock.advance(1);
    await rejection(jwks.getKey({ alg: "RS256", kid: "unknown-3" }));
    expect(issuer.jwksRequests()).toBe(3);
  });

  it("does not refetch right after the first fetch when the kid is unknown", async () => {
    const jwks = new RemoteJwks(issuer.profile());
    await expect(jwks.getKey({ alg: "RS256", kid: "nope" })).rejects.toThrow(InvalidTokenError);
    expect(issuer.jwksRequests()).toBe(1);
  });

  it("keeps verifying with cached keys when the issuer goes down after they expire", async () => {
    const clock = manualClock();
    const jwks = new RemoteJwks(issuer.profile(), { now: clock.now, maxAgeMs: 60_000 });
    const header = { alg: "RS256", kid: issuer.kid };
    await jwks.getKey(header);
    await issuer.close();
    clock.advance(120_000);
    await expect(jwks.getKey(header)).resolves.toMatchObject({ type: "public" });
  });

  it("refreshes keys older than maxAgeMs", async () => {
    const clock = manualClock();
    const jwks = new RemoteJwks(issuer.profile(), { now: clock.now, maxAgeMs: 60_000 });
    await jwks.getKey({ alg: "RS256", kid: issuer.kid });
    clock.advance(60_000);
    await jwks.getKey({ alg: "RS256", kid: issuer.kid });
    expect(issuer.jwksRequests()).toBe(2);
  });

  it("is unavailable, not an invalid token, when keys were never fetched", async () => {
    const down = await startServer((_req, res) => res.writeHead(500).end());
    servers.push(down);
    const jwks = new RemoteJwks({ name: "down", jwksUri: down.url });
    const error = await rejection(jwks.getKey({ alg: "RS256", kid: "k" }));
    expect(error).toBeInstanceOf(UpstreamUnavailableError);
    expect(error).toMatchObject({ code: "upstream_unavailable", status: 503 });
    expect(error.message).toBe('signing keys of issuer profile "down" could not be fetched');
    expect((error.cause as Error).message).toBe("JWKS endpoint answered HTTP 500");
  });

  it("fails fast after a failed fetch with nothing cached, then fetches again after the cooldown", async () => {
    let up = false;
    const idp = await startServer((_req, res) => {
      if (!up) {
        res.writeHead(500).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [issuer.publicJwk] }));
    });
    servers.push(idp);
    const clock = manualClock();
    const jwks = new RemoteJwks({ name: "flaky", jwksUri: idp.url }, { now: clock.now, cooldownMs: 10_000 });
    const header = { alg: "RS256", kid: issuer.kid };
    const unavailable = (error: Error) => {
      expect(error).toBeInstanceOf(UpstreamUnavailableError);
      expect(error).toMatchObject({ code: "upstream_unavailable", status: 503 });
      expect(error.message).toBe('signing keys of issuer profile "flaky" could not be fetched');
    };

    // Concurrent first lookups share the failing fetch.
    const concurrent = await Promise.all(Array.from({ length: 5 }, () => rejection(jwks.getKey(header))));
    concurrent.forEach(unavailable);
    expect(idp.requests()).toBe(1);

    // Within the failure cooldown, lookups fail fast without touching the IdP, even once it is back.
    up = true;
    for (const elapsed of [0, 5_000, 4_999]) {
      clock.advance(elapsed);
      unavailable(await rejection(jwks.getKey(header)));
    }
    unavailable(
      (await Promise.all(Array.from({ length: 5 }, () => rejection(jwks.getKey(header)))))[0] as Error,
    );
    expect(idp.requests()).toBe(1);

    // The first lookup after the window fetches again.
    clock.advance(1);
    await expect(jwks.getKey(header)).resolves.toMatchObject({ type: "public" });
    expect(idp.requests()).toBe(2);
  });

  it("keeps the failure cooldown for a lookup that fails again after the window", async () => {
    const down = await startServer((_req, res) => res.writeHead(503).end());
    servers.push(down);
    const clock = manualClock();
    const jwks = new RemoteJwks({ name: "down", jwksUri: down.url }, { now: clock.now });
    const header = { alg: "RS256", kid: "k" };

    for (let i = 0; i < 3; i++) {
      await expect(jwks.getKey(header)).rejects.toThrow(UpstreamUnavailableError);
    }
    expect(down.requests()).toBe(1);

    clock.advance(30_000);
    for (let i = 0; i < 3; i++) {
      await expect(jwks.getKey(header)).rejects.toThrow(UpstreamUnavailableError);
    }
    expect(down.requests()).toBe(2);

    clock.advance(29_999);
    await expect(jwks.getKey(header)).rejects.toThrow(UpstreamUnavailableError);
    expect(down.requests()).toBe(2);
  });

  it("takes the failure cooldown from its own option", async () => {
    const down = await startServer((_req, res) => res.writeHead(500).end());
    servers.push(down);
    const clock = manualClock();
    const jwks = new RemoteJwks(
      { name: "down", jwksUri: down.url },
      { now: clock.now, cooldownMs: 60_000, failureCooldownMs: 2_000 },
    );
    const header = { alg: "RS256", kid: "k" };

    await expect(jwks.getKey(header)).rejects.toThrow(UpstreamUnavailableError);
    clock.advance(1_999);
    await expect(jwks.getKey(header)).rejects.toThrow(UpstreamUnavailableError);
    expect(down.requests()).toBe(1);

    clock.advance(1);
    await expect(jwks.getKey(header)).rejects.toThrow(UpstreamUnavailableError);
    expect(down.requests()).toBe(2);
  });

  it("does not follow redirects away from the configured jwksUri", async () => {
    const redirecting = await startServer((_req, res) =>
      res.writeHead(302, { location: issuer.jwksUri }).end(),
    );
    servers.push(redirecting);
    const jwks = new RemoteJwks({ name: "redirect", jwksUri: redirecting.url });
    await expect(jwks.getKey({ alg: "RS256", kid: issuer.kid })).rejects.toThrow(UpstreamUnavailableError);
    expect(issuer.jwksRequests()).toBe(0);
  });

  it("aborts a streamed body larger than the cap", async () => {
    const huge = await startServer((_req, res) => {
      // No content-length: the cap must be enforced while reading.
      res.writeHead(200, { "content-type": "application/json" });
      res.write(`{"keys":[],"padding":"`);
      const chunk = "x".repeat(16 * 1024);
      for (let i = 0; i < 8; i++) res.write(chunk);
      res.end(`"}`);
    });
    servers.push(huge);
    const jwks = new RemoteJwks({ name: "huge", jwksUri: huge.url });
    const error = await rejection(jwks.getKey({ alg: "RS256", kid: "k" }));
    expect(error).toBeInstanceOf(UpstreamUnavailableError);
    expect((error.cause as Error).message).toBe("JWKS response exceeds 65536 bytes");
  });

  it("refuses a declared content-length above the cap without reading the body", async () => {
    const body = JSON.stringify({ keys: [issuer.publicJwk] });
    const declared = await startServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    servers.push(declared);
    const jwks = new RemoteJwks({ name: "small-cap", jwksUri: declared.url }, { maxBytes: 100 });
    const error = await rejection(jwks.getKey({ alg: "RS256", kid: issuer.kid }));
    expect(error).toBeInstanceOf(UpstreamUnavailableError);
    expect((error.cause as Error).message).toBe("JWKS response exceeds 100 bytes");
    // The same JWKS fits under the default cap.
    await expect(
      new RemoteJwks({ name: "default-cap", jwksUri: declared.url }).getKey({
        alg: "RS256",
        kid: issuer.kid,
      }),
    ).resolves.toMatchObject({ type: "public" });
  });

  it("times out on a server that never answers", async () => {
    const silent = await startServer(() => {
      // never respond
    });
    servers.push(silent);
    // The request's timer runs on a fake clock: the abort must come at exactly 200 ms.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    onTestFinished(() => {
      vi.useRealTimers();
    });
    const jwks = new RemoteJwks({ name: "silent", jwksUri: silent.url }, { timeoutMs: 200 });
    let settled = false;
    const pending = rejection(jwks.getKey({ alg: "RS256", kid: "k" })).finally(() => {
      settled = true;
    });

    await vi.advanceTimersByTimeAsync(199);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const error = await pending;
    expect(error).toBeInstanceOf(UpstreamUnavailableError);
    expect((error.cause as Error).message).toBe("JWKS request timed out after 200 ms");
  });

  it("ignores private and symmetric keys published by mistake", async () => {
    const leaky = await startServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [{ kty: "oct", k: "c2VjcmV0", kid: "shared" }] }));
    });
    servers.push(leaky);
    const jwks = new RemoteJwks({ name: "leaky", jwksUri: leaky.url });
    await expect(jwks.getKey({ alg: "RS256", kid: "shared" })).rejects.toThrow(
      "token signed with an unknown key",
    );
  });
});
