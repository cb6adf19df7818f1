/**
 * Real node processes on loopback for multi-process tests.
 *
 * API and application HTTP ports are 0 and read from each node's ready line. Static membership needs every
 * member's cluster address up front, so cluster ports are picked by binding port 0 and releasing it; a
 * restarted member keeps its port. Children get piped standard input, so they exit if the test runner dies.
 */

import { freePort, NodeProcess } from "../../runtime/forge/mod.ts";
import { type PartitionProxy, startPartitionProxy } from "./partition_proxy.ts";

export { NodeProcess };

export interface ClusterOptions {
  fsync?: "always" | "never";
  /** Extra flags for every node. */
  extraArgs?: string[];
  /** Extra flags of one node (after `extraArgs`), e.g. its own certificate; `root` is the cluster's directory. */
  argsFor?: (id: string, root: string) => string[];
  /**
   * Carry every link between two members through its own partition proxy (the member with the smaller id
   * dials, so its --peers names the proxy in front of the other), so a test can cut one link: `link(a, b)`.
   */
  proxyLinks?: boolean;
}

/** A fixed-format admin token for a test cluster (its nodes create it from --bootstrap-token-file). */
export function testAdminToken(): string {
  return `aether_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}_${
    crypto.randomUUID().replaceAll("-", "")
  }`;
}

export class TestCluster {
  readonly nodes: NodeProcess[] = [];
  /** The cluster's admin token: every node's `json()` and `api()` send it. */
  token = "";
  readonly #links = new Map<string, PartitionProxy>();

  private constructor(readonly root: string) {}

  /** Creates the members without starting them. */
  static async create(size: number, options: ClusterOptions = {}): Promise<TestCluster> {
    const root = await Deno.makeTempDir({ prefix: "aether-test-" });
    const cluster = new TestCluster(root);
    const secretFile = `${root}/secret`;
    await Deno.writeTextFile(secretFile, `test-secret-${crypto.randomUUID()}`);
    cluster.token = testAdminToken();
    const bootstrapTokenFile = `${root}/admin-token`;
    await Deno.writeTextFile(bootstrapTokenFile, cluster.token);
    const ids = Array.from({ length: size }, (_, i) => `n${i + 1}`);
    const ports = new Map(ids.map((id) => [id, freePort()]));
    const extraArgs = [...(options.fsync ? ["--fsync", options.fsync] : []), ...(options.extraArgs ?? [])];
    for (const id of ids) {
      const peers = ids.map((peer) => {
        let port = ports.get(peer)!;
        if (options.proxyLinks && id < peer) {
          const proxy = startProxyAvoiding(port, [...ports.values()]);
          cluster.#links.set(`${id}-${peer}`, proxy);
          port = proxy.port;
        }
        return `${peer}@127.0.0.1:${port}`;
      }).join(",");
      cluster.nodes.push(
        new NodeProcess({
          id,
          peers,
          dataDir: `${root}/${id}`,
          secretFile,
          bootstrapTokenFile,
          token: cluster.token,
          extraArgs: [...extraArgs, ...(options.argsFor?.(id, root) ?? [])],
        }),
      );
    }
    return cluster;
  }

  static async start(size: number, options: ClusterOptions = {}): Promise<TestCluster> {
    const cluster = await TestCluster.create(size, options);
    try {
      await cluster.startAll();
    } catch (e) {
      await cluster.close();
      throw e;
    }
    return cluster;
  }

  async startAll(): Promise<void> {
    await Promise.all(this.nodes.filter((n) => !n.running).map((n) => n.start()));
  }

  /** The proxy carrying the link between members `a` and `b` (proxyLinks only). */
  link(a: string, b: string): PartitionProxy {
    const proxy = this.#links.get(a < b ? `${a}-${b}` : `${b}-${a}`);
    if (!proxy) throw new Error(`no proxy on the link ${a}-${b}: create the cluster with proxyLinks`);
    return proxy;
  }

  node(id: string): NodeProcess {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  running(): NodeProcess[] {
    return this.nodes.filter((n) => n.running);
  }

  /** Polls until `check` returns a truthy value; the last error goes into the timeout message. */
  async waitFor<T>(
    what: string,
    check: () => Promise<T | undefined | null | false>,
    timeoutMs = 20_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown = null;
    while (Date.now() < deadline) {
      try {
        const result = await check();
        if (result) return result;
      } catch (e) {
        lastError = e;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(
      `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError}` : ""}`,
    );
  }

  /** Waits until every running node is healthy and names the same running leader; returns its id. */
  async waitForLeader(timeoutMs = 20_000): Promise<string> {
    const runningIds = new Set(this.running().map((n) => n.id));
    return await this.waitFor("one running leader named by every running node", async () => {
      const leaders = await Promise.all(
        this.running().map(async (n) => {
          const { status, body } = await n.json<{ leader: string | null }>("/api/v1/health");
          return status === 200 ? body.leader : null;
        }),
      );
      const first = leaders[0];
      return first && runningIds.has(first) && leaders.every((l) => l === first) ? first : null;
    }, timeoutMs);
  }

  /** Every node's log, for failure messages. */
  logs(): string {
    return this.nodes.map((n) => `----- ${n.id} -----\n${n.log}`).join("\n");
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop("SIGKILL")));
    await Promise.all([...this.#links.values()].map((proxy) => proxy.close()));
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}

/**
 * A proxy to `targetPort` on a port none of the members will bind: member ports were picked free and released,
 * so the kernel may hand one of them to the proxy's listener.
 */
function startProxyAvoiding(targetPort: number, memberPorts: number[]): PartitionProxy {
  const unusable: PartitionProxy[] = [];
  try {
    for (;;) {
      const proxy = startPartitionProxy({ targetPort });
      if (!memberPorts.includes(proxy.port)) return proxy;
      unusable.push(proxy);
    }
  } finally {
    for (const proxy of unusable) void proxy.close();
  }
}
