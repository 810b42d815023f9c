import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { MAX_BODY_BYTES } from "./api.js";
import { jsonResponse } from "./errors.js";
import type { HttpRequest, HttpResponse } from "./types.js";

/**
 * Serves the API core over node:http (the sandbox's wiring; Lambda uses `lambda.ts`).
 * Bodies are read up to one byte past the limit so an oversized body is refused by the core
 * without buffering more.
 */
export async function serveApi(
  api: (req: HttpRequest) => Promise<HttpResponse>,
  options: { port: number; host?: string },
): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer(async (req, res) => {
    const requestId = randomUUID();
    let response: HttpResponse;
    try {
      response = await api(await toHttpRequest(req, requestId));
    } catch {
      response = jsonResponse(500, { error: { code: "internal", message: "internal error" } }, requestId);
    }
    res.writeHead(response.status, response.headers).end(response.body);
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function toHttpRequest(req: IncomingMessage, requestId: string): Promise<HttpRequest> {
  const url = new URL(req.url ?? "/", "http://localhost");
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value === "string") headers[name] = value;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams) query[name] = value;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    if (size <= MAX_BODY_BYTES) chunks.push(buf);
    size += buf.length;
  }
  const body = Buffer.concat(chunks)
    .subarray(0, MAX_BODY_BYTES + 1)
    .toString("utf8");
  return {
    method: req.method ?? "GET",
    path: url.pathname,
    headers,
    query,
    body: size === 0 ? undefined : body,
    requestId,
    ...(req.socket.remoteAddress ? { sourceIp: req.socket.remoteAddress } : {}),
  };
}
