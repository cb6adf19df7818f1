/**
 * The management API's service names (services_api.ts): `aether infra install|status NAME` of a name no
 * bundled service has answers 404 with the name and every bundled service with its version, and never
 * suggests "aether infra install NAME", the command that just failed (a blueprint's missing service keeps
 * that hint: tests/integration/infra_services_test.ts).
 */

import { deepStrictEqual as assertEquals, doesNotMatch, equal, match } from "node:assert/strict";
import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import type { InfraServices } from "./services.ts";
import { SERVICES } from "./services.ts";
import { infraServicesRoutes } from "./services_api.ts";

/** The routes with the API's error shape; the services are never reached for a refused name. */
function api(): Hono {
  const root = new Hono();
  root.route("/", infraServicesRoutes({} as InfraServices));
  root.onError((e, c) =>
    e instanceof AetherError
      ? c.json({ code: e.code, detail: e.message }, e.status as 400 | 404)
      : c.json({ detail: String(e) }, 500)
  );
  return root;
}

Deno.test("infra API: an unknown service name lists the bundled services, no install hint for it", async () => {
  const app = api();
  for (const [method, path] of [["POST", "/infra/nope/install"], ["GET", "/infra/nope"]]) {
    const r = await app.request(path, { method });
    equal(r.status, 404, path);
    const { code, detail } = await r.json();
    equal(code, "not_found");
    match(detail, /^Infrastructure service 'nope' not found\.\n/);
    const list = SERVICES.map((s) => `  - ${s.name} \\(v${s.version.replaceAll(".", "\\.")}\\)`).join("\n");
    match(detail, new RegExp(`No bundled service has that name; the bundled services are:\n${list}$`));
    doesNotMatch(detail, /aether infra install/);
    doesNotMatch(detail, /Blueprint/);
  }
  assertEquals(SERVICES.length > 1, true);
});
