/**
 * Helpers for invocation tests: several "nodes" in one process, each with a real mesh on loopback, a real
 * SliceExecutor (worker isolation) and a SliceInvoker; one shared KvState stands for the replicated state
 * (every node applies the same changes, as replication would make them do).
 */

import { fileURLToPath } from "node:url";
import { Mesh } from "../net/mod.ts";
import { createLogger, type Logger, type NodeId } from "../core/mod.ts";
import { type KvCommand, type KvEvent, KvState } from "../kv/mod.ts";
import { decodeValue, encodeValue, kvKeys, type RoutingRecord } from "../model/mod.ts";
import { EndpointRegistry } from "../deployment/mod.ts";
import {
  type IsolationMode,
  SliceExecutor,
  type SliceExecutorOptions,
  type SliceLogEntry,
} from "../sandbox/mod.ts";
import { buildSlice, type BuiltSlice } from "../authoring/mod.ts";
import { SliceInvoker, type SliceInvokerOptions } from "./invoker.ts";
import { InvokeSettings, timeoutKey } from "./settings.ts";

export const SECRET = new TextEncoder().encode("invoke-test-secret-0123456789");

export type FixtureName = "back" | "middle" | "front" | "hello" | "caller";

const built = new Map<string, Promise<BuiltSlice>>();

/** Builds `tests/fixtures/invoke/<name>.ts` once per process (optionally at another version). */
export function fixture(name: FixtureName, version?: string): Promise<BuiltSlice> {
  const key = `${name}@${version ?? ""}`;
  let result = built.get(key);
  if (!result) {
    const path = fileURLToPath(new URL(`../../tests/fixtures/invoke/${name}.ts`, import.meta.url));
    built.set(key, result = buildSlice(path, version ? { version } : {}));
  }
  return result;
}

export interface TestNode {
  id: NodeId;
  mesh: Mesh;
  executor: SliceExecutor;
  registry: EndpointRegistry;
  invoker: SliceInvoker;
  /** The node's own log lines and its slices' log entries. */
  lines: string[];
  sliceLogs: SliceLogEntry[];
  stopped: boolean;
}

export type NodeOptions =
  & Partial<Pick<SliceInvokerOptions, "retry" | "flow" | "defaultTimeoutMs" | "spans">>
  & {
    /** The sandbox isolation of the node's executor (default worker). */
    mode?: IsolationMode;
    /** Bounds of the node's sandbox hosts (default DEFAULT_HOST_LIMITS). */
    hostLimits?: SliceExecutorOptions["hostLimits"];
  };

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export class InProcessCluster {
  readonly state = new KvState();
  readonly settings = new InvokeSettings();
  readonly nodes: TestNode[] = [];

  static async start(
    ids: NodeId[],
    options: NodeOptions | ((id: NodeId) => NodeOptions) = {},
  ): Promise<InProcessCluster> {
    const cluster = new InProcessCluster();
    const meshes = ids.map((self) =>
      new Mesh({
        self,
        peers: ids.map((id) => ({ id, host: "127.0.0.1", port: 0 })),
        secret: SECRET,
        logger: createLogger({ level: "error", sink: () => {} }),
      })
    );
    for (const mesh of meshes) await mesh.start();
    for (const mesh of meshes) {
      for (const other of meshes) {
        if (other !== mesh) mesh.setPeerAddress(other.self, "127.0.0.1", other.port);
      }
    }
    for (const mesh of meshes) {
      const lines: string[] = [];
      const sliceLogs: SliceLogEntry[] = [];
      const log: Logger = createLogger({ level: "debug", name: mesh.self, sink: (line) => lines.push(line) });
      const late: { invoker?: SliceInvoker } = {};
      const { mode = "worker", hostLimits, ...nodeOptions } = typeof options === "function"
        ? options(mesh.self)
        : options;
      const executor = new SliceExecutor({
        policy: { mode, net: [], env: [], memoryLimitMb: 256 },
        warmProcesses: false,
        // The mode asked for, for every slice (a node runs only trusted slices in Workers).
        trustAllSlices: true,
        hostLimits,
        onOutboundCall: (call) => late.invoker!.outboundHandler(call),
        onLog: (entry) => sliceLogs.push(entry),
      });
      const registry = EndpointRegistry.fromKv(cluster.state);
      const invoker = late.invoker = new SliceInvoker({
        self: mesh.self,
        mesh,
        endpoints: registry,
        executor,
        routing: (slice) => cluster.settings.routing(slice),
        sliceTimeoutMs: (slice) => cluster.settings.timeoutMs(slice),
        log,
        ...nodeOptions,
      });
      cluster.nodes.push({
        id: mesh.self,
        mesh,
        executor,
        registry,
        invoker,
        lines,
        sliceLogs,
        stopped: false,
      });
    }
    await waitFor(
      () => meshes.every((m) => m.connectedPeers().length === meshes.length - 1),
      "every mesh to connect to every other",
    );
    return cluster;
  }

  node(id: NodeId): TestNode {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  /** Applies a command to the shared state and feeds its events to every node, as replication would. */
  apply(command: KvCommand): void {
    const events: KvEvent[] = [];
    const result = this.state.apply(command, events);
    if (!result.ok) throw new Error(`${command.type} failed: ${result.message}`);
    for (const node of this.nodes) node.registry.apply(events);
    this.settings.apply(events);
  }

  /** Loads and activates an instance of `slice` on `node` (number `n`); publishes its endpoints and routes. */
  async deploy(nodeId: NodeId, slice: BuiltSlice, n = 0): Promise<string> {
    const node = this.node(nodeId);
    const instanceId = `${slice.manifest.coordinates}/${n}`;
    await node.executor.run({
      type: "LOAD",
      instanceId,
      artifact: { manifest: slice.manifest, bundle: slice.bundle },
    });
    await node.executor.run({ type: "ACTIVATE", instanceId });
    for (const method of slice.manifest.methods) {
      this.apply({
        type: "put",
        key: kvKeys.endpoint(slice.manifest.coordinates, method, nodeId, n),
        value: encodeValue("endpoint", { registeredAt: Date.now() }),
      });
    }
    const artifactKey = kvKeys.artifact(slice.manifest.coordinates);
    if (!this.state.get(artifactKey)) {
      const { manifest } = slice;
      const record = {
        manifest,
        sha256: manifest.sha256,
        sizeBytes: manifest.sizeBytes,
        holders: [nodeId],
        pushedAt: 1,
      };
      this.apply({ type: "put", key: artifactKey, value: encodeValue("artifact", record) });
    }
    for (const entry of slice.manifest.routes?.entries ?? []) {
      const key = kvKeys.route(entry.httpMethod, entry.fullPath);
      const existing = this.state.get(key);
      const nodes = existing ? decodeValue("route", existing.value).nodes : [];
      if (!nodes.includes(nodeId)) nodes.push(nodeId);
      const base = slice.manifest.coordinates.split(":").slice(0, 2).join(":");
      this.apply({
        type: "put",
        key,
        value: encodeValue("route", { slice: base, method: entry.method, nodes: nodes.sort() }),
      });
    }
    return instanceId;
  }

  setRouting(slice: string, record: Omit<RoutingRecord, "updatedAt">): void {
    this.apply({
      type: "put",
      key: kvKeys.routing(slice),
      value: encodeValue("routing", { ...record, updatedAt: Date.now() }),
    });
  }

  setTimeout(slice: string, timeoutMs: number): void {
    this.apply({
      type: "put",
      key: timeoutKey(slice),
      value: encodeValue("config", { value: timeoutMs, updatedAt: Date.now() }),
    });
  }

  /** Stops one node the hard way: its mesh goes away (peers see it depart), then its sandboxes. */
  async stopNode(id: NodeId): Promise<void> {
    const node = this.node(id);
    if (node.stopped) return;
    node.stopped = true;
    node.invoker.close();
    await node.mesh.stop();
    await node.executor.close();
  }

  async close(): Promise<void> {
    for (const node of this.nodes) node.invoker.close();
    await Promise.all(this.nodes.map((n) => n.stopped ? undefined : n.mesh.stop()));
    await Promise.all(this.nodes.map((n) => n.stopped ? undefined : n.executor.close()));
  }
}
