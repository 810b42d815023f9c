import type { AgentRef } from "../domain/task.js";

/** Which of an agent's token buckets a call draws from. */
export type RateBucket = "vend" | "refresh";

/** Token bucket settings of an agent's vend (and refresh) rate. */
export interface VendRateLimit {
  /** Most calls an idle agent may make at once (the bucket's size). */
  readonly capacity?: number;
  /** Tokens added per second, up to `capacity`: the agent's sustained rate. */
  readonly refillPerSecond?: number;
}

/** The one default of the per-agent rate: bursts of 50, refilled at 5 per second. */
export const DEFAULT_VEND_RATE = {
  capacity: 50,
  refillPerSecond: 5,
} as const satisfies Required<VendRateLimit>;

/**
 * Port: the per-agent rates (CONTRACT.md section 3, `429 rate_limited`). `vend` bounds new tasks,
 * `refresh` fresh credentials of running ones: separate buckets of the same size, so refreshes
 * are bounded too and a burst of vends never starves a long task's refresh.
 */
export interface RateLimiter {
  /**
   * Takes one token from the agent's bucket.
   * @throws RateLimitedError (with `Retry-After`) when the bucket is empty
   * @throws UpstreamUnavailableError when the store fails
   */
  consume(agent: AgentRef, bucket?: RateBucket): Promise<void>;
}
