/**
 * A running Forge: N supervised node processes on loopback, every mesh link between two of them carried by a
 * link proxy Forge controls (for partitions and latency), the control channel `aether forge <command>` talks
 * to, and `.forge/forge.json` kept up to date.
 *
 * Mesh links: in every pair only the member with the smaller id dials, so its --peers names the proxy in front
 * of the other member; the other dials nobody on that link. A proxy dials its member's fixed cluster port anew
 * for every connection, so links work again as soon as a restarted node listens.
 */

import { type DashboardAssets, dashboardResponse, isDashboardPath, readDashboardAssets } from "../api/mod.ts";
import { PROJECT_ROOT } from "../node/mod.ts";
import { ConsoleLoad, parseLoadRequest } from "./console_load.ts";
import { type Fault, FaultSet, linkKey } from "./faults.ts";
import { type LinkProxy, startLinkProxy } from "./link_proxy.ts";
import { RotatingLogFile } from "./log_file.ts";
import { freePort, NodeProcess, portIsFree, SECRETS_KEY_FILE } from "./node_process.ts";
import type { ForgeOptions } from "./options.ts";
import { FORGE_DIR, type ForgeState, removeState, STATE_FILE, writeState } from "./state.ts";
import { NodeSupervisor } from "./supervisor.ts";

/** Largest control request body (a fault is a few dozen bytes). */
const MAX_CONTROL_BODY_BYTES = 4 * 1024;

interface ForgeMember {
  supervisor: NodeSupervisor;
  log: RotatingLogFile;
  clusterPort: number;
}

/** The cluster's first admin token: the file the nodes read it from, and the token itself. */
export interface AdminToken {
  file: string;
  token: string;
}

export class Forge {
  readonly members: ForgeMember[] = [];
  readonly faults: FaultSet;
  readonly #links = new Map<string, LinkProxy>();
  readonly #stop = Promise.withResolvers<string>();
  #server: Deno.HttpServer<Deno.NetAddr> | null = null;
  #control = "";
  /** The console page (dashboard/dist/forge.html and its assets), or why it is not served. */
  #console: DashboardAssets | Error = new Error("Forge's console is not loaded yet");
  /** The load the console starts (POST /load). */
  readonly #load = new ConsoleLoad();
  #startedAt = new Date().toISOString();
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(readonly options: ForgeOptions, secretFile: string, readonly adminToken?: AdminToken) {
    const ids = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    const taken = new Set<number>();
    const port = (preferred: number) => choosePort(options.freePorts ? 0 : preferred, taken);
    const clusterPorts = new Map(ids.map((id, i) => [id, port(7101 + i)]));
    const apiPorts = ids.map((_, i) => port(8081 + i));
    const httpPorts = ids.map((_, i) => port(8071 + i));
    this.faults = new FaultSet(ids);
    ids.forEach((id, i) => {
      const peers = ids.map((peer) => {
        let peerPort = clusterPorts.get(peer)!;
        if (id < peer) {
          const proxy = startProxyAvoiding(peerPort, taken);
          this.#links.set(linkKey(id, peer), proxy);
          peerPort = proxy.port;
        }
        return `${peer}@127.0.0.1:${peerPort}`;
      }).join(",");
      const log = new RotatingLogFile(`${FORGE_DIR}/logs/${id}.log`);
      const node = new NodeProcess({
        id,
        peers,
        dataDir: `${FORGE_DIR}/${id}`,
        secretFile,
        secretsKeyFile: `${FORGE_DIR}/${SECRETS_KEY_FILE}`,
        bootstrapTokenFile: adminToken?.file,
        token: adminToken?.token,
        apiPort: apiPorts[i],
        httpPort: httpPorts[i],
        onLog: (text) => log.write(text),
      });
      const supervisor = new NodeSupervisor(node, {
        restart: options.restart,
        report: (line) => console.log(line),
        changed: () => this.saveState(),
        logTail: () => log.tail(),
        stopGraceMs: 5_000,
      });
      this.members.push({ supervisor, log, clusterPort: clusterPorts.get(id)! });
    });
  }

  get nodes(): NodeProcess[] {
    return this.members.map((m) => m.supervisor.node);
  }

  /** Resolves with the reason when Forge is asked to stop (`aether forge stop`). */
  get stopRequested(): Promise<string> {
    return this.#stop.promise;
  }

  get control(): string {
    return this.#control;
  }

  /** Opens the control channel and writes forge.json; then starts every node and waits until all are ready. */
  async start(): Promise<void> {
    this.#console = await readDashboardAssets(`${PROJECT_ROOT}/dashboard/dist`, "forge.html")
      .catch((e) => e instanceof Error ? e : new Error(String(e)));
    // The console's load form starts from the example's own template (examples/<name>/load-order.json.tmpl).
    if (this.options.example) {
      const template = `${PROJECT_ROOT}/examples/${this.options.example}/load-order.json.tmpl`;
      const body = await Deno.readTextFile(template).catch(() => undefined);
      if (body !== undefined) this.#load.defaults = { target: "POST /api/v1/orders", body };
    }
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: () => {},
    }, (request) => this.#handle(request));
    this.#control = `http://127.0.0.1:${this.#server.addr.port}`;
    await this.saveState();
    await Promise.all(this.members.map((m) => m.supervisor.start()));
    await this.saveState();
  }

  state(): ForgeState {
    return {
      pid: Deno.pid,
      control: this.#control,
      nodes: this.members.map(({ supervisor, clusterPort }) => {
        const s = supervisor.snapshot();
        const o = supervisor.node.options;
        return {
          id: s.id,
          api: `127.0.0.1:${o.apiPort}`,
          app: `http://127.0.0.1:${o.httpPort}`,
          cluster: clusterPort,
          pid: s.pid,
          running: s.running,
          restarts: s.restarts,
        };
      }),
      faults: this.faults.list(),
      startedAt: this.#startedAt,
      restart: this.options.restart,
      example: this.options.example,
    };
  }

  /** Rewrites forge.json (writes are queued so the file always ends with the latest state). */
  saveState(): Promise<void> {
    if (this.#closed || !this.#control) return this.#writing;
    this.#writing = this.#writing.then(() => this.#closed ? undefined : writeState(this.state()))
      .catch((e) => console.error(`forge: could not write ${STATE_FILE}: ${(e as Error).message}`));
    return this.#writing;
  }

  member(id: string): NodeSupervisor {
    const member = this.members.find((m) => m.supervisor.id === id);
    if (!member) {
      throw new RangeError(
        `no member "${id}"; the members are ${this.members.map((m) => m.supervisor.id).join(", ")}`,
      );
    }
    return member.supervisor;
  }

  addFault(fault: Fault): void {
    this.faults.add(fault);
    this.#applyFaults();
  }

  heal(): number {
    const count = this.faults.clear();
    this.#applyFaults();
    return count;
  }

  #applyFaults(): void {
    for (const [key, proxy] of this.#links) {
      const [a, b] = key.split("-");
      const link = this.faults.link(a, b);
      proxy.setLatency(link.latencyMs);
      if (link.partitioned) proxy.partition();
      else proxy.heal();
    }
    void this.saveState();
  }

  /** Stops every node, the proxies and the control channel; removes forge.json. */
  async close(): Promise<void> {
    this.#load.stop();
    await Promise.all(this.members.map((m) => m.supervisor.stop()));
    this.#closed = true;
    await this.#writing;
    await removeState();
    await Promise.all([...this.#links.values()].map((p) => p.close()));
    await this.#server?.shutdown();
    for (const m of this.members) m.log.close();
  }

  async #handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname;
    try {
      if (request.method === "GET" && path === "/status") return json(200, this.state());
      if (request.method === "GET" && path === "/load") return json(200, this.#load.view());
      // The console (GET / and its assets) is the browser's way in; its commands are same-origin POSTs.
      if ((request.method === "GET" || request.method === "HEAD") && isDashboardPath(path)) {
        return dashboardResponse(this.#console, request);
      }
      // A page of any other origin must not kill nodes: a browser sends Origin with a cross-site POST, and
      // the plain JSON body would need no preflight. The CLI sends no Origin.
      const origin = request.headers.get("origin");
      if (origin !== null && origin !== this.#control) {
        return problem(
          403,
          `Origin ${origin} may not control this Forge (only its console at ${this.#control})`,
        );
      }
      if (request.method !== "POST") {
        return problem(
          405,
          `${request.method} ${path}: only GET /status, GET /load, the console (GET /) or POST`,
        );
      }
      const body = await readBody(request);
      if (path === "/stop") {
        this.#stop.resolve("aether forge stop");
        return json(200, { stopping: true });
      }
      const nodeAction = path.match(/^\/nodes\/([^/]+)\/(kill|restart)$/);
      if (nodeAction) {
        const supervisor = this.member(decodeURIComponent(nodeAction[1]));
        if (nodeAction[2] === "kill") supervisor.kill();
        else supervisor.restart();
        return json(200, { node: supervisor.id, action: nodeAction[2], pid: supervisor.snapshot().pid });
      }
      if (path === "/faults") {
        this.addFault(parseFault(body));
        return json(200, { faults: this.faults.list() });
      }
      if (path === "/heal") return json(200, { healed: this.heal(), faults: [] });
      if (path === "/load") {
        const apps = this.members.map((m) => `http://127.0.0.1:${m.supervisor.node.options.httpPort}`);
        this.#load.start(parseLoadRequest(body), apps);
        return json(200, this.#load.view());
      }
      if (path === "/load/stop") {
        this.#load.stop();
        return json(200, this.#load.view());
      }
      return problem(404, `no control command ${path}`);
    } catch (e) {
      const status = e instanceof RangeError ? 400 : e instanceof SyntaxError ? 400 : 409;
      return problem(status, (e as Error).message);
    }
  }
}

function parseFault(body: unknown): Fault {
  const f = body as Record<string, unknown> | null;
  const text = (name: string) => {
    if (typeof f?.[name] !== "string") throw new RangeError(`fault: "${name}" must be a member id`);
    return f[name] as string;
  };
  switch (f?.kind) {
    case "partition":
      return { kind: "partition", a: text("a"), b: text("b") };
    case "isolate":
      return { kind: "isolate", node: text("node") };
    case "latency": {
      const ms = f.ms;
      if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 0 || ms > 60_000) {
        throw new RangeError(`latency: ${JSON.stringify(ms)} is not a whole number of ms from 0 to 60000`);
      }
      return { kind: "latency", a: text("a"), b: text("b"), ms };
    }
    default:
      throw new RangeError(`fault: kind ${JSON.stringify(f?.kind)} is not partition, isolate or latency`);
  }
}

async function readBody(request: Request): Promise<unknown> {
  const text = await request.text();
  if (text.length > MAX_CONTROL_BODY_BYTES) throw new RangeError(`body over ${MAX_CONTROL_BODY_BYTES} bytes`);
  return text ? JSON.parse(text) : null;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function problem(status: number, detail: string): Response {
  return new Response(JSON.stringify({ status, detail }), {
    status,
    headers: { "content-type": "application/problem+json" },
  });
}

/** The preferred port when it is free and not already chosen, else any free one (0: any free one). */
function choosePort(preferred: number, taken: Set<number>): number {
  let port = preferred !== 0 && !taken.has(preferred) && portIsFree(preferred) ? preferred : freePort();
  while (taken.has(port)) port = freePort();
  taken.add(port);
  return port;
}

/** A proxy to `targetPort` listening on a port none of the nodes will bind (their ports were only reserved). */
function startProxyAvoiding(targetPort: number, taken: Set<number>): LinkProxy {
  const unusable: LinkProxy[] = [];
  try {
    for (;;) {
      const proxy = startLinkProxy({ targetPort });
      if (!taken.has(proxy.port)) {
        taken.add(proxy.port);
        return proxy;
      }
      unusable.push(proxy);
    }
  } finally {
    for (const proxy of unusable) void proxy.close();
  }
}
