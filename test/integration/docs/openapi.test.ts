import { validate } from "@readme/openapi-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SandboxBroker } from "../../../lib/credentials/sandbox-broker.js";
import { composeApi } from "../../../lib/http/compose-api.js";
import { parseIssuerConfig } from "../../../lib/identity/issuers.js";
import { apiClient, type Json } from "../../support/api-client.js";
import { createTestTable } from "../../support/dynamodb.js";
import { startTestIssuer, type TestIssuer } from "../../support/test-issuer.js";

// GET /v1/openapi.json, as the API serves it, is a valid OpenAPI 3.1 document by a maintained
// validator (@readme/openapi-parser: the 3.1 JSON Schema plus the spec's own rules, such as every
// templated path parameter being declared). Broken copies prove the validator would notice.

let issuer: TestIssuer;
let served: Json;

beforeAll(async () => {
  const table = await createTestTable();
  issuer = await startTestIssuer({ alg: "ES256" });
  const core = composeApi({
    doc: table.doc,
    tableName: table.tableName,
    issuers: parseIssuerConfig({ issuers: [issuer.profile({ name: "agents" })] }),
    broker: new SandboxBroker(),
    lifecycle: { start: async () => undefined },
    tokens: { sendSuccess: async () => undefined },
  });
  const res = await apiClient(() => core.api)("GET", "/v1/openapi.json");
  expect(res.status).toBe(200);
  served = res.json;
});

afterAll(async () => {
  await issuer?.close();
});

/** Validates a deep copy: the validator dereferences the document it is given in place. */
const check = (document: Json) => validate(structuredClone(document));

describe("GET /v1/openapi.json", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    const result = await check(served);
    expect(result.valid ? [] : result.errors.map((e) => e.message)).toEqual([]);
    expect(result).toMatchObject({ valid: true, specification: "OpenAPI" });
    expect(served.openapi).toBe("3.1.0");
  });

  it("would be rejected if broken: a missing info object, an undeclared path parameter", async () => {
    const { info: _, ...noInfo } = served;
    expect((await check(noInfo)).valid).toBe(false);

    const undeclared = structuredClone(served);
    undeclared.paths["/v1/tasks/{taskId}"].get.parameters = [];
    const result = await check(undeclared);
    expect(result.valid).toBe(false);
    expect(result.valid ? "" : result.errors.map((e) => e.message).join("\n")).toContain("taskId");
  });
});
