import { deepStrictEqual, equal, match, ok, throws } from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { AetherError, type ErrorCode, PROBLEM_TYPE } from "../core/mod.ts";
import { ENDPOINT_DOCS, type JsonSchema, openApiDocument, openApiPath, PROBLEM_STATUSES } from "./openapi.ts";
import { ENDPOINT_ROLES, type EndpointEntry } from "./roles.ts";

type Operation = {
  "x-aether-role": string;
  security: unknown[];
  parameters?: { name: string; in: string }[];
  responses: Record<string, unknown>;
  operationId: string;
};

function operations(document: JsonSchema): Map<string, Operation> {
  const found = new Map<string, Operation>();
  for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, Operation>>)) {
    for (const [method, operation] of Object.entries(item)) {
      found.set(`${method.toUpperCase()} ${path}`, operation);
    }
  }
  return found;
}

Deno.test("openapi: the generated document is valid OpenAPI 3.1 (checked by an OpenAPI schema validator)", async () => {
  const validator = new Validator();
  const result = await validator.validate(openApiDocument());
  deepStrictEqual(result.errors ?? [], [], JSON.stringify(result.errors, null, 2));
  ok(result.valid);
  equal(validator.version, "3.1");
});

Deno.test("openapi: the validator refuses a broken document (so the check above can fail)", async () => {
  const broken = openApiDocument() as {
    paths: Record<string, Record<string, { parameters: Record<string, unknown>[] }>>;
  };
  broken.paths["/api/v1/blueprints/{id}"].get.parameters[0].in = "somewhere";
  const result = await new Validator().validate(broken);
  equal(result.valid, false);
});

Deno.test("openapi: every entry of the role table is one operation, with its role and security", () => {
  const document = openApiDocument();
  const found = operations(document);
  equal(found.size, ENDPOINT_ROLES.length);
  const ids = new Set<string>();
  for (const entry of ENDPOINT_ROLES) {
    const operation = found.get(`${entry.method} ${openApiPath(entry.path)}`);
    ok(operation, `${entry.method} ${entry.path} has no operation`);
    equal(operation["x-aether-role"], entry.role, entry.path);
    ok(!ids.has(operation.operationId), `operationId ${operation.operationId} is used twice`);
    ids.add(operation.operationId);
    if (entry.role === "open") {
      deepStrictEqual(operation.security, [], entry.path);
    } else {
      deepStrictEqual(operation.security, [{ bearer: [] }], entry.path);
      ok("401" in operation.responses && "403" in operation.responses, `${entry.path}: 401 and 403`);
    }
    ok("400" in operation.responses, `${entry.path}: 400 (the Host check)`);
    const pathNames = (operation.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name);
    const templated = [...openApiPath(entry.path).matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    deepStrictEqual(pathNames, templated, `${entry.path}: path parameters`);
  }
  const openapi = found.get("GET /api/v1/openapi.json");
  equal(openapi?.["x-aether-role"], "open", "agents read the document before they hold a token");
});

Deno.test("openapi: an endpoint without a description, or a description without an endpoint, is refused", () => {
  const extra: EndpointEntry = { method: "POST", path: "/api/v1/new-thing", role: "operator" };
  throws(
    () => openApiDocument([...ENDPOINT_ROLES, extra]),
    /endpoints without a description: POST \/api\/v1\/new-thing/,
  );
  throws(
    () => openApiDocument(ENDPOINT_ROLES.filter((e) => e.path !== "/api/v1/slices")),
    /descriptions of endpoints roles.ts does not list: GET \/api\/v1\/slices/,
  );
  const wrongParameters = {
    ...ENDPOINT_DOCS,
    "GET /api/v1/blueprints/:id": { ...ENDPOINT_DOCS["GET /api/v1/blueprints/:id"], pathParameters: {} },
  };
  throws(() => openApiDocument(ENDPOINT_ROLES, wrongParameters), /blueprints\/:id: path parameters id/);
});

Deno.test("openapi: the problem types are exactly the error codes, with the statuses the API answers", () => {
  for (const [code, status] of Object.entries(PROBLEM_STATUSES)) {
    equal(new AetherError(code as ErrorCode, "x").status, status, code);
  }
  const problem = (openApiDocument().components as {
    schemas: { Problem: { properties: { type: { enum: string[] } } } };
  }).schemas.Problem;
  ok(problem.properties.type.enum.includes(`${PROBLEM_TYPE}not_found`));
  ok(problem.properties.type.enum.includes(`${PROBLEM_TYPE}slice-error`));
});

Deno.test("openapi: every $ref points at something the document defines", () => {
  const document = openApiDocument();
  const refs = [...JSON.stringify(document).matchAll(/"\$ref":"#\/([^"]+)"/g)].map((m) => m[1]);
  ok(refs.length > 0);
  for (const ref of refs) {
    let node: unknown = document;
    for (const part of ref.split("/")) node = (node as Record<string, unknown> | undefined)?.[part];
    ok(node !== undefined, `#/${ref} is not defined`);
  }
});

Deno.test("openapi: role-table patterns become OpenAPI paths", () => {
  equal(openApiPath("/api/v1/kv/*"), "/api/v1/kv/{key}");
  equal(openApiPath("/api/v1/invoke/:target/:method"), "/api/v1/invoke/{target}/{method}");
  equal(openApiPath("/api/v1/openapi.json"), "/api/v1/openapi.json");
  match(JSON.stringify(openApiDocument()), /"x-aether-audit-target":"key"/);
});
