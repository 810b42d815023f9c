const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * A new task id: `tsk_` and 26 characters of Crockford base32 (130 random bits), valid as
 * an STS `RoleSessionName` and an IAM tag value.
 * @example newTaskId() // "tsk_7k3q9z0m2d5h8r1c4v6n0b2x9w"
 */
export function newTaskId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(26));
  let out = "tsk_";
  for (const b of bytes) out += ALPHABET[b & 31];
  return out;
}

/** True when `value` looks like a task id; anything else is answered `404` without a lookup. */
export function isTaskId(value: string): boolean {
  return /^tsk_[0-9a-hjkmnp-tv-z]{26}$/.test(value);
}
