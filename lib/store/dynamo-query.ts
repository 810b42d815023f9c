import { type DynamoDBDocumentClient, QueryCommand, type QueryCommandInput } from "@aws-sdk/lib-dynamodb";

/**
 * Every item a query returns, page after page. A failed page becomes `onError(error)`'s
 * result (each adapter maps SDK failures to its own safe error).
 */
export async function queryAll(
  client: DynamoDBDocumentClient,
  input: Omit<QueryCommandInput, "ExclusiveStartKey">,
  onError: (error: unknown) => Error,
): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const out = await client
      .send(new QueryCommand({ ...input, ExclusiveStartKey: startKey }))
      .catch((error: unknown) => {
        throw onError(error);
      });
    items.push(...(out.Items ?? []));
    startKey = out.LastEvaluatedKey;
  } while (startKey);
  return items;
}
