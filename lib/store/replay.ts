import { replayItem, TTL_ATTRIBUTE } from "./table.js";

/**
 * How long past a token's `exp` (and past now) its used `jti` is kept by default. The verifier
 * accepts a token up to its clock tolerance after `exp`; without this margin such a token could
 * be replayed in that window. Must be at least the largest `clockToleranceSeconds` of any issuer
 * profile.
 */
export const REPLAY_GRACE_SECONDS = 300;

/**
 * The conditional `Put` that spends a token's `jti` (`pk = JTI#<issuer>#<jti>`): refused while the
 * id is recorded, until `max(exp, now) + graceSeconds`. An entry whose `ttlEpoch` has passed no
 * longer blocks, even if DynamoDB TTL has not deleted it yet. One copy of this fact, for the vend
 * transaction and its tests.
 * @param exp the token's `exp` in epoch seconds
 * @param nowSeconds the current time in epoch seconds
 */
export function replayPut(
  tableName: string,
  token: { readonly issuer: string; readonly jti: string; readonly exp: number },
  nowSeconds: number,
  graceSeconds: number = REPLAY_GRACE_SECONDS,
) {
  const until = Math.max(Math.ceil(token.exp), nowSeconds) + graceSeconds;
  return {
    TableName: tableName,
    Item: replayItem(token.issuer, token.jti, token.exp, until),
    ConditionExpression: "attribute_not_exists(pk) OR #ttl < :now",
    ExpressionAttributeNames: { "#ttl": TTL_ATTRIBUTE },
    ExpressionAttributeValues: { ":now": nowSeconds },
  };
}
