/** Port: operational counters (revocation failures, fallbacks, STS throttling). */
export interface Metrics {
  count(name: MetricName, value?: number): void;
}

export type MetricName =
  | "RevocationFailed"
  | "RevocationFallback"
  | "TaskExpiredByBackstop"
  | "CredentialsIssued"
  | "StsThrottled";

/** CloudWatch namespace of jitv's metrics (alarms in the CDK stack use it). */
export const METRICS_NAMESPACE = "jitv";
/** The `service` dimension every deployed function gives its metrics (alarms select on it). */
export const METRICS_SERVICE = "jitv";

/**
 * Writes each count as one CloudWatch Embedded Metric Format line on stdout: in Lambda,
 * CloudWatch turns it into a metric with no API call; in the sandbox it is just a log line.
 */
export class EmfMetrics implements Metrics {
  readonly #service: string;
  readonly #write: (line: string) => void;

  constructor(options: { service?: string; write?: (line: string) => void } = {}) {
    this.#service = options.service ?? METRICS_SERVICE;
    this.#write = options.write ?? ((line) => process.stdout.write(`${line}\n`));
  }

  count(name: MetricName, value = 1): void {
    this.#write(
      JSON.stringify({
        _aws: {
          Timestamp: Date.now(),
          CloudWatchMetrics: [
            {
              Namespace: METRICS_NAMESPACE,
              Dimensions: [["service"]],
              Metrics: [{ Name: name, Unit: "Count" }],
            },
          ],
        },
        service: this.#service,
        [name]: value,
      }),
    );
  }
}

/** Keeps counts in memory (tests). */
export class MemoryMetrics implements Metrics {
  readonly counts = new Map<MetricName, number>();

  count(name: MetricName, value = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + value);
  }
}
