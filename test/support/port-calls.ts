import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";

/** One call to a port (DynamoDB, STS, Step Functions): when it started and ended on one counter of events. */
export interface PortCall {
  readonly port: string;
  readonly command: string;
  /** The latency injected into it: what it weighs on a path. */
  readonly weightMs: number;
  readonly start: number;
  end: number;
}

/**
 * Records calls to the ports of a vend, each held for an injected latency before it goes out
 * (an AWS-like round trip), on one counter of events: which calls ran side by side and which one
 * after another. Used by the vend I/O test and `bench/vend.bench.ts`.
 * @example
 * const log = new PortCallLog().dynamodb(client, 6);
 * await vend();
 * criticalPath(log.calls).filter((c) => c.port === "dynamodb").length; // 2
 */
export class PortCallLog {
  readonly calls: PortCall[] = [];
  #events = 0;

  /** Forgets the calls recorded so far. */
  clear(): void {
    this.calls.length = 0;
  }

  /** Records every call the client (and any document client over it) sends, each delayed `latencyMs`. */
  dynamodb(client: DynamoDBClient, latencyMs = 0): this {
    client.middlewareStack.add(
      (next, context) => (args) =>
        this.call("dynamodb", String(context.commandName), latencyMs, () => next(args)),
      { step: "initialize", name: "portCallLog" },
    );
    return this;
  }

  /** Runs `send` as one call of `port`, `latencyMs` after it was made. */
  async call<T>(port: string, command: string, latencyMs: number, send: () => Promise<T>): Promise<T> {
    const call: PortCall = { port, command, weightMs: latencyMs, start: ++this.#events, end: 0 };
    this.calls.push(call);
    try {
      if (latencyMs > 0) await new Promise((done) => setTimeout(done, latencyMs));
      return await send();
    } finally {
      call.end = ++this.#events;
    }
  }
}

/**
 * The heaviest chain of calls of which each started only after the one before it ended (weighed
 * by injected latency, then by length): the calls the caller waited on one after another.
 */
export function criticalPath(calls: readonly PortCall[]): PortCall[] {
  const sorted = [...calls].sort((a, b) => a.start - b.start);
  const best: { weight: number; path: PortCall[] }[] = [];
  sorted.forEach((call, i) => {
    let before: { weight: number; path: PortCall[] } = { weight: 0, path: [] };
    for (let j = 0; j < i; j++) {
      const earlier = best[j];
      if (!earlier || (sorted[j] as PortCall).end > call.start) continue;
      if (
        earlier.weight > before.weight ||
        (earlier.weight === before.weight && earlier.path.length > before.path.length)
      )
        before = earlier;
    }
    best.push({ weight: before.weight + call.weightMs, path: [...before.path, call] });
  });
  return best.reduce<{ weight: number; path: PortCall[] }>(
    (a, b) => (b.weight > a.weight || (b.weight === a.weight && b.path.length > a.path.length) ? b : a),
    { weight: 0, path: [] },
  ).path;
}
