/**
 * For the example's tests: the five slices built as an operator builds them, each running in a real sandbox
 * (`SliceHost`, process isolation, no permissions), behind the node's real application HTTP handler
 * (`createAppHandler`: routes from the manifests, JSON body → request, outcome → response or RFC 7807
 * problem). Only the cluster is missing: calls between slices go straight to the one host of each slice
 * instead of through the SliceInvoker and the mesh, and `ctx.infra` calls reach the in-memory services of
 * slices/testing.ts instead of the replicated store.
 */

import { fileURLToPath } from "node:url";
import { buildSlice, type BuiltSlice } from "../../runtime/authoring/mod.ts";
import { SliceHost, type SliceLogEntry } from "../../runtime/sandbox/host.ts";
import { createAppHandler, type RouteDefinition, RouteTable } from "../../runtime/http/mod.ts";
import { AetherError } from "../../runtime/core/errors.ts";
import { silentLogger } from "../../runtime/core/log.ts";
import { TestInfra } from "../../slices/testing.ts";

export const SLICES = ["place-order", "inventory", "pricing", "payment", "fulfillment"] as const;
export type SliceName = typeof SLICES[number];

/** Builds `examples/ecommerce/<name>/slice.ts`. */
export function buildExampleSlice(name: SliceName): Promise<BuiltSlice> {
  return buildSlice(fileURLToPath(new URL(`./${name}/slice.ts`, import.meta.url)));
}

export interface LocalShop {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  hosts: ReadonlyMap<string, SliceHost>;
  logs: SliceLogEntry[];
  close(): Promise<void>;
}

/** Starts the five slices (built ones if given, else built now) and serves them on a port of 127.0.0.1. */
export async function startLocalShop(built?: ReadonlyMap<string, BuiltSlice>): Promise<LocalShop> {
  const logs: SliceLogEntry[] = [];
  const hosts = new Map<string, SliceHost>();
  const routes: RouteDefinition[] = [];
  // The cluster's kv service, as slices/testing.ts keeps it in memory for tests without a cluster.
  const infra = new TestInfra();
  for (const name of SLICES) {
    const slice = built?.get(name) ?? await buildExampleSlice(name);
    const artifact = `org.example:${name}`;
    hosts.set(
      artifact,
      new SliceHost({
        instanceId: `${name}-1`,
        ...slice,
        onLog: (entry) => logs.push(entry),
        onOutboundCall: (call) =>
          call.name === "@infra"
            ? Promise.resolve(
              infra.serve(call.target.artifact.split(":")[1], call.method, call.payload as never),
            )
            : deliver(call.target.artifact, call.method, call.payload, call),
      }),
    );
    for (const entry of slice.manifest.routes?.entries ?? []) {
      routes.push({
        httpMethod: entry.httpMethod,
        path: entry.fullPath,
        slice: artifact,
        method: entry.method,
        nodes: ["local"],
        queryParams: entry.queryParams,
      });
    }
  }
  function deliver(
    artifact: string,
    method: string,
    payload: unknown,
    options: { requestId?: string; traceparent?: string; deadlineMs?: number; timeoutMs?: number },
  ) {
    const host = hosts.get(artifact);
    if (!host) return Promise.reject(new AetherError("unavailable", `no instance of ${artifact}`));
    return host.invoke(method, payload, options);
  }

  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  try {
    await Promise.all([...hosts.values()].map(async (h) => (await h.load(), await h.start())));
    const table = new RouteTable(routes);
    const handler = createAppHandler({
      routes: () => table,
      invoker: {
        invoke: (target, method, request, options) =>
          deliver(typeof target === "string" ? target : target.artifact, method, request, options ?? {}),
      },
      log: silentLogger,
    });
    server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  } catch (e) {
    await Promise.all([...hosts.values()].map((h) => h.unload().catch(() => {})));
    throw e;
  }
  const running = server;
  return {
    url: `http://127.0.0.1:${running.addr.port}`,
    hosts,
    logs,
    async close() {
      await running.shutdown();
      await Promise.all([...hosts.values()].map((h) => h.unload().catch(() => {})));
    },
  };
}
