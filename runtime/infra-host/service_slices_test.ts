/**
 * The node's half of the `@service-host` capability (services.ts `serveHost`): only the bundled artifact of a
 * service, at the bundled digest (read from the real infra/dist), reaches that service's engine, and the engine
 * gets the group of the caller the service slice names. A user's `aether.infra` artifact with another digest,
 * an application slice, or one service's slice asking for another service's engine are refused (403). The
 * sandbox host's half (only group aether.infra, only its own service) is exercised by
 * tests/integration/infra_slices_test.ts (step "hostile").
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import type { OutboundCall } from "../sandbox/mod.ts";
import { readBundledRepository } from "./bundled.ts";
import { ServiceSlices } from "./service_slices.ts";
import { startInfraServices } from "./services.ts";
import type { InfraStores } from "./feature.ts";
import type { ServiceCall } from "./services.ts";
import { silentLogger } from "../core/mod.ts";
import { encodeValue } from "../model/mod.ts";

function hostCall(from: string, fromSha256: string, artifact: string, payload: unknown): OutboundCall {
  return {
    instanceId: `${from}/1`,
    from,
    fromSha256,
    name: "@service-host",
    target: { artifact, range: "*" },
    method: "holder",
    payload,
    requestId: "r1",
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    deadlineMs: Date.now() + 5_000,
    fireAndForget: false,
  };
}

Deno.test("@service-host: only the bundled artifact at the bundled digest reaches its own engine", async () => {
  const bundled = readBundledRepository();
  const lock = (await bundled).services.get("lock")!;
  const cache = (await bundled).services.get("cache")!;
  const seen: ServiceCall[] = [];
  const slices = new ServiceSlices({
    bundled,
    state: () => ({ get: () => undefined, range: () => [], revision: 0 }) as never,
    write: () => Promise.reject(new Error("not used")),
    members: () => ["n1"],
    isConnected: () => true,
    nowMs: () => Date.now(),
    publish: () => Promise.reject(new Error("not used")),
    published: () => undefined,
    log: silentLogger,
  });
  await slices.names();
  const services = startInfraServices({
    stores: {} as InfraStores,
    // The lock's engine, observed: what group and request it is handed.
    kvServed: { lock: (call) => Promise.resolve(void seen.push(call)).then(() => null) },
    slices,
  });
  const request = { caller: "org.example.shop:cart:1.0.0", request: { lock: "orders" } };

  const good = await services.serve(hostCall(lock.coordinates, lock.sha256, "aether.infra:lock", request));
  ok(good.ok, JSON.stringify(good));
  equal(seen.length, 1);
  equal(seen[0].group, "org.example.shop");
  deepEqual(seen[0].payload, { lock: "orders" });

  const refused = [
    // A user's aether.infra:lock:1.0.0 with other content (the repository API refuses it; the node too).
    hostCall(lock.coordinates, "0".repeat(64), "aether.infra:lock", request),
    // An application slice.
    hostCall("org.example.evil:lock:1.0.0", lock.sha256, "aether.infra:lock", request),
    // The bundled cache asking for the lock's engine.
    hostCall(cache.coordinates, cache.sha256, "aether.infra:lock", request),
    // Another version of the lock than the bundled one.
    hostCall("aether.infra:lock:9.9.9", lock.sha256, "aether.infra:lock", request),
  ];
  for (const call of refused) {
    const outcome = await services.serve(call);
    ok(!outcome.ok && outcome.error.status === 403, `${call.from}: ${JSON.stringify(outcome)}`);
  }
  equal(seen.length, 1, "no refused call reached the engine");

  for (const bad of [{ request: {} }, { caller: "nogroup", request: {} }, null, { caller: 5 }]) {
    const outcome = await services.serve(hostCall(lock.coordinates, lock.sha256, "aether.infra:lock", bad));
    ok(!outcome.ok && outcome.error.status === 400, JSON.stringify(outcome));
  }
  equal(seen.length, 1);
});

Deno.test("a service slice is called only at the bundled version (else the nodes serve it)", async () => {
  const bundled = readBundledRepository();
  const cache = (await bundled).services.get("cache")!;
  let version = "0.9.0";
  let modRevision = 7;
  const state = {
    get: (key: string) =>
      key === "targets/aether.infra:cache"
        ? {
          key,
          value: encodeValue("target", { version, instances: 3, owners: [], updatedAt: 0 }),
          modRevision,
          createRevision: 7,
          version: 1,
        }
        : undefined,
    range: () => [],
    revision: modRevision,
  };
  const slices = new ServiceSlices({
    bundled,
    state: () => state as never,
    write: () => Promise.reject(new Error("not used")),
    members: () => ["n1"],
    isConnected: () => true,
    nowMs: () => Date.now(),
    publish: () => Promise.reject(new Error("not used")),
    published: () => undefined,
    log: silentLogger,
  });
  await slices.names();
  equal(slices.deployed("cache"), false, "an older version's instances are not called");
  version = cache.version;
  modRevision = 8;
  equal(slices.deployed("cache"), true);
  equal(slices.deployed("lock"), false, "no target");
  equal(slices.deployed("pubsub"), false, "bundled but no target: node-served");
});
