import { InvalidRequestError } from "../domain/errors.js";

const SECRET_ARN = /^arn:[a-z-]+:secretsmanager:[a-z0-9-]*:\d*:secret:([^:]+)$/;
/** The hyphen and six random characters Secrets Manager appends to a secret's name in its ARN. */
const RANDOM_SUFFIX = /-[A-Za-z0-9]{6}$/;

/**
 * The secret's name in a Secrets Manager secret ARN: the ARN's resource without the `-` and six
 * random characters AWS appends. A partial ARN (no suffix) whose name happens to end in `-` and six
 * letters or digits cannot be told apart from a full one, so pass full ARNs.
 *
 * @throws InvalidRequestError when `arn` is not a secret ARN, or is a pattern (`*`, `?`)
 * @example
 * secretNameFromArn("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-creds-AbCdEf"); // "db-creds"
 */
export function secretNameFromArn(arn: string): string {
  const resource = SECRET_ARN.exec(arn)?.[1];
  if (resource === undefined || /[*?]/.test(resource)) {
    throw new InvalidRequestError(
      "not a Secrets Manager secret ARN (arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 characters>)",
    );
  }
  const name = resource.replace(RANDOM_SUFFIX, "");
  return name.length > 0 ? name : resource;
}
