import { NotFoundError } from "../domain/errors.js";

/**
 * Port: rotates a secret when a task that could read it ends, so the value the task saw is
 * no longer current. `rotate` resolves once a rotation was started (Secrets Manager) or done
 * (sandbox); a rotation already in progress throws `RotationInProgressError` so the caller
 * retries later instead of treating it as done.
 */
export interface SecretRotator {
  rotate(secretArn: string): Promise<void>;
}

/** A rotation of the secret is already under way: retry later, do not treat the secret as rotated. */
export class RotationInProgressError extends Error {
  constructor(secretArn: string) {
    super(`a rotation of ${secretArn} is already in progress`);
    this.name = "RotationInProgressError";
  }
}

/**
 * The secret to rotate does not exist (deleted, or a wrong ARN in the template). Retrying will not
 * help; the caller records it and moves on.
 */
export class SecretNotFoundError extends NotFoundError {
  constructor(secretArn: string) {
    super(`secret ${secretArn} does not exist; it was not rotated`);
  }
}
