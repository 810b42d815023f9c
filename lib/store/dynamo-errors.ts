import { isNamed, JitvError, UpstreamUnavailableError } from "../domain/errors.js";

/**
 * What a DynamoDB adapter throws when the table fails: the error itself when it is already a
 * domain outcome, else `UpstreamUnavailableError` with a fixed message naming the store (the SDK
 * error kept only as `cause`, so no request data reaches a response or log).
 * @example
 * } catch (error) { throw storeUnavailable("task store", error); }
 */
export function storeUnavailable(store: string, error: unknown): JitvError {
  if (error instanceof JitvError) return error;
  return new UpstreamUnavailableError(`${store} unavailable`, { cause: error });
}

/** True when a conditional write (or a transaction's condition) was refused. */
export function isConditionalCheckFailed(error: unknown): boolean {
  return isNamed(error, "ConditionalCheckFailedException");
}
