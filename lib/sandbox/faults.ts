import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { FinalizeRequestMiddleware } from "@smithy/types";
import { ConfigError, UpstreamUnavailableError } from "../domain/errors.js";

/** The services whose calls `--faults` can fail (CONTRACT.md section 7). */
export const FAULT_SERVICES = ["sts", "dynamodb", "sfn", "iam", "secrets"] as const;
export type FaultService = (typeof FAULT_SERVICES)[number];

/** For each service, the probability (0..1) that one call fails. */
export type FaultSpec = Readonly<Partial<Record<FaultService, number>>>;

/**
 * Parses `--faults`: `sts=0.2,dynamodb=0.05,sfn=0.1,iam=0.2,secrets=0.2`.
 * @throws ConfigError naming the bad entry
 */
export function parseFaultSpec(text: string): FaultSpec {
  const spec: Partial<Record<FaultService, number>> = {};
  for (const entry of text.split(",").filter((e) => e.trim() !== "")) {
    const [name = "", value = ""] = entry.split("=").map((part) => part.trim());
    const probability = Number(value);
    if (!(FAULT_SERVICES as readonly string[]).includes(name)) {
      throw new ConfigError(`--faults: unknown service "${name}"; one of ${FAULT_SERVICES.join(", ")}`);
    }
    if (value === "" || !Number.isFinite(probability) || probability < 0 || probability > 1) {
      throw new ConfigError(`--faults: ${name} needs a probability from 0 to 1, e.g. ${name}=0.2`);
    }
    spec[name as FaultService] = probability;
  }
  return spec;
}

/**
 * Fails calls at random, the way each service's throttling or 5xx would reach jitv: DynamoDB
 * with `ProvisionedThroughputExceededException` inside the SDK (so its retries apply), STS, Step
 * Functions, IAM and Secrets Manager as their adapters report them after their own retries.
 * Off until {@link FaultInjector.arm} (the sandbox starts cleanly, then misbehaves).
 */
export class FaultInjector {
  readonly #spec: FaultSpec;
  readonly #random: () => number;
  #armed = false;
  /** Faults injected so far, per service. */
  readonly injected: Record<FaultService, number> = { sts: 0, dynamodb: 0, sfn: 0, iam: 0, secrets: 0 };

  constructor(spec: FaultSpec, random: () => number = Math.random) {
    this.#spec = spec;
    this.#random = random;
  }

  arm(): void {
    this.#armed = true;
  }

  /** Stops injecting (the services "recover"), e.g. to show that what failed meanwhile heals. */
  disarm(): void {
    this.#armed = false;
  }

  /** Throws the service's failure with the configured probability. */
  maybeFail(service: FaultService): void {
    const probability = this.#spec[service] ?? 0;
    if (!this.#armed || probability === 0 || this.#random() >= probability) return;
    this.injected[service]++;
    if (service === "dynamodb") {
      throw Object.assign(new Error("Rate of requests exceeds the allowed throughput (injected fault)"), {
        name: "ProvisionedThroughputExceededException",
        $fault: "client",
        $metadata: { httpStatusCode: 400 },
        $retryable: { throttling: true },
      });
    }
    throw new UpstreamUnavailableError(`${service} failed (injected fault)`);
  }

  /** A port (every method async) whose calls first fail with `service`'s probability. */
  wrap<T extends object>(service: FaultService, target: T): T {
    return new Proxy(target, {
      get: (object, property) => {
        const value = Reflect.get(object, property, object);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          try {
            this.maybeFail(service);
          } catch (error) {
            return Promise.reject(error);
          }
          return (value as (...a: unknown[]) => unknown).apply(object, args);
        };
      },
    });
  }

  /** Adds the DynamoDB fault to an SDK client, after its retry step (so the SDK retries it, as it would a real throttle). */
  instrumentDynamoDb(client: DynamoDBClient): void {
    const inject: FinalizeRequestMiddleware<object, object> = (next) => async (args) => {
      this.maybeFail("dynamodb");
      return next(args);
    };
    client.middlewareStack.add(inject as never, {
      step: "finalizeRequest",
      priority: "low",
      name: "jitvInjectedFaults",
    });
  }
}
