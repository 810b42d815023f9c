import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import type { HttpRequest, HttpResponse } from "./types.js";

/** API Gateway (REST, proxy integration) event → transport-neutral request. */
export function fromApiGatewayEvent(
  event: APIGatewayProxyEvent,
  context: Pick<Context, "awsRequestId">,
): HttpRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (value !== undefined) headers[name.toLowerCase()] = value;
  }
  const query: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.queryStringParameters ?? {})) {
    if (value !== undefined) query[name] = value;
  }
  const body =
    event.body == null
      ? undefined
      : event.isBase64Encoded
        ? Buffer.from(event.body, "base64").toString()
        : event.body;
  return {
    method: event.httpMethod,
    path: event.path,
    headers,
    query,
    body,
    requestId: event.requestContext?.requestId ?? context.awsRequestId,
    ...(event.requestContext?.identity?.sourceIp ? { sourceIp: event.requestContext.identity.sourceIp } : {}),
  };
}

export function toApiGatewayResult(response: HttpResponse): APIGatewayProxyResult {
  return { statusCode: response.status, headers: response.headers, body: response.body };
}

/**
 * Last-resort middy error middleware: anything that escapes the API core (it maps its own
 * errors) becomes the contract's `500 internal` body, with nothing from the error exposed.
 */
export function contractErrorMiddleware(): MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult> {
  return {
    onError: async (request) => {
      const requestId = request.context.awsRequestId;
      request.response = {
        statusCode: 500,
        headers: {
          "content-type": "application/json",
          "cache-control": "no-store",
          "x-request-id": requestId,
        },
        body: JSON.stringify({ error: { code: "internal", message: "internal error" } }),
      };
    },
  };
}
