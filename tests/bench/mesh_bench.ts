/**
 * Mesh benchmark: codec cost in process, then round trips and throughput between two processes on loopback,
 * against a raw WebSocket echo (no codec, no mesh) measured in the same run.
 *
 *   deno run --allow-net=127.0.0.1 --allow-run --allow-read --allow-env=WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE \
 *     tests/bench/mesh_bench.ts [--quick]
 *
 * Part 1, codecs: encode + decode of each message kind the mesh carries (a consensus vote; a batch of 100 puts
 * with 100-byte values; a 64 KiB invocation payload; a "consensus mix" of one batch and six votes), for
 * @msgpack/msgpack with reused Encoder/Decoder and for JSON with out-of-band binary, with bytes per message.
 * Part 2, sockets: p50/p99 round trip of one small message at a time, and echo throughput with a window of
 * messages in flight, for a raw WebSocket echo server and for a mesh member (tests/_support/mesh_member.ts)
 * with each codec, each in its own process. The raw baselines use both clients: Deno's `WebSocket` and the
 * `ws` client the mesh dials with (runtime/net/_dialer.ts).
 * Part 3, the gap pattern: a message the peer does not answer, 1-5 ms of quiet, then one it echoes; the time
 * from that second send to its echo. A client socket with Nagle's algorithm on holds the second message back
 * until the first is acknowledged, which the peer's delayed ACK makes about 40 ms. Measured for the raw
 * clients and for the mesh in both directions (this process dialing the member, and the member dialing it).
 */

import { parseArgs } from "node:util";
import { CODEC_NAMES, type CodecName, createCodec } from "../../runtime/net/codec.ts";
import { Mesh } from "../../runtime/net/mesh.ts";
import { DEFAULT_CODEC, DIALER_ENV_VARS, dialWebSocket, type MeshSocket } from "../../runtime/net/mod.ts";
import { silentLogger } from "../../runtime/core/log.ts";
import { type DenoChild, spawnDenoChild } from "../_support/child.ts";

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    "raw-echo-server": { type: "boolean", default: false },
  },
});

if (flags["raw-echo-server"]) await rawEchoServer();

const QUICK = flags.quick;
const root = new URL("../../", import.meta.url).pathname;
const SECRET = new TextEncoder().encode("mesh-benchmark-secret-0123456789");

// ------------------------------------------------------------------------------------------------ messages

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed) & 0xff);

function vote(seq: number) {
  return { t: "vote1", phase: 100_000 + seq, round: 1, value: 1, batchId: "n1:7f3a:123456" };
}

function batch100(seq: number) {
  return {
    t: "propose",
    phase: 100_000 + seq,
    batch: {
      id: `n1:7f3a:${seq}`,
      submitter: "n1",
      createdAt: 1_732_280_000_123 + seq,
      commands: Array.from({ length: 100 }, (_, i) => ({
        type: "put",
        key: `app/users/${String(seq * 100 + i).padStart(8, "0")}`,
        value: bytes(100, i),
      })),
    },
  };
}

function payload64k(seq: number) {
  return { id: seq, requestId: "3f1c9a7e5b2d4c60", method: "upload", body: bytes(65_536, seq) };
}

// --------------------------------------------------------------------------------------------- part 1: codecs

interface CodecFigure {
  usPerMessage: number;
  bytes: number;
}

/**
 * Time per message of encode + decode. The machine is shared and noisy, so both codecs are measured in
 * alternating rounds and the median round is reported.
 */
function measureCodecs(
  make: (seq: number) => unknown[],
  roundMs: number,
  rounds: number,
): Record<CodecName, CodecFigure> {
  const samples = Array.from({ length: 16 }, (_, i) => make(i));
  const perCodec = CODEC_NAMES.map((name) => {
    const codec = createCodec(name);
    let size = 0;
    for (const message of samples[0]) size += codec.encodeShared(message).byteLength;
    const runFor = (ms: number) => {
      let messages = 0;
      const start = performance.now();
      let elapsed = 0;
      for (let r = 0; elapsed < ms; r++) {
        for (const message of samples[r & 15]) {
          codec.decode(codec.encodeShared(message));
          messages++;
        }
        elapsed = performance.now() - start;
      }
      return (elapsed * 1000) / messages;
    };
    runFor(roundMs); // warm-up: let the JIT settle
    return { name, size: size / samples[0].length, runFor, times: [] as number[] };
  });
  for (let round = 0; round < rounds; round++) {
    for (const c of perCodec) c.times.push(c.runFor(roundMs));
  }
  const result = {} as Record<CodecName, CodecFigure>;
  for (const c of perCodec) {
    c.times.sort((a, b) => a - b);
    result[c.name] = { usPerMessage: c.times[Math.floor(c.times.length / 2)], bytes: c.size };
  }
  return result;
}

function codecPart(): void {
  const kinds: { label: string; make: (seq: number) => unknown[] }[] = [
    { label: "vote (small)", make: (s) => [vote(s)] },
    { label: "batch of 100 puts x 100 B", make: (s) => [batch100(s)] },
    { label: "64 KiB payload", make: (s) => [payload64k(s)] },
    {
      label: "mix: 1 batch + 6 votes",
      make: (s) => [batch100(s), ...Array.from({ length: 6 }, (_, i) => vote(s + i))],
    },
  ];
  console.log("\n## Codec: encode + decode per message, in process (median of alternating rounds)\n");
  console.log(
    table(["message", "msgpack µs", "JSON µs", "JSON/msgpack time", "msgpack bytes", "JSON bytes"]),
  );
  for (const kind of kinds) {
    const { msgpack: m, json: j } = measureCodecs(kind.make, QUICK ? 60 : 200, QUICK ? 5 : 9);
    console.log(row([
      kind.label,
      m.usPerMessage.toFixed(2),
      j.usPerMessage.toFixed(2),
      (j.usPerMessage / m.usPerMessage).toFixed(2),
      m.bytes.toFixed(0),
      j.bytes.toFixed(0),
    ]));
  }
}

// -------------------------------------------------------------------------------------------- part 2: sockets

/** One side of an echo conversation: send one message, get told when an echo arrives. */
interface EchoClient {
  label: string;
  send(seq: number): boolean;
  /** Sends a small message the other side does not answer. */
  sendUnanswered(): void;
  onEcho(handler: () => void): void;
  close(): Promise<void>;
}

/** A mesh member drops messages on a channel nobody handles (it counts them): nothing goes back. */
const UNANSWERED_CHANNEL = "unanswered";
/** The raw echo server does not answer messages whose first byte is 0. */
const UNANSWERED_RAW = new Uint8Array([0, 1, 2, 3]);

async function rawEchoServer(): Promise<never> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      if (new Uint8Array(event.data)[0] !== 0) socket.send(event.data);
    };
    return response;
  });
  console.log(JSON.stringify({ event: "ready", port: server.addr.port }));
  for await (const _ of Deno.stdin.readable) { /* until stdin closes */ }
  await server.shutdown();
  Deno.exit(0);
}

type RawKind = "deno" | "ws";
const RAW_LABEL: Record<RawKind, string> = { deno: "raw Deno WebSocket", ws: "raw ws (npm), no-delay" };

/** A raw client: Deno's WebSocket (what the mesh dialed with before) or `ws` set up as the mesh dials. */
async function rawClient(port: number, size: number, kind: RawKind = "deno"): Promise<EchoClient> {
  const url = `ws://127.0.0.1:${port}/`;
  const ws: MeshSocket = kind === "deno"
    ? new WebSocket(url)
    : dialWebSocket(url, { maxMessageBytes: 1 << 26 });
  ws.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const message = bytes(size, 1);
  let handler = () => {};
  ws.onmessage = () => handler();
  return {
    label: `${RAW_LABEL[kind]}, ${size} B`,
    send: () => {
      ws.send(message);
      return true;
    },
    sendUnanswered: () => ws.send(UNANSWERED_RAW),
    onEcho: (h) => handler = h,
    close: async () => {
      const closed = new Promise((resolve) => ws.onclose = resolve);
      ws.close();
      await closed;
    },
  };
}

async function meshClient(codec: CodecName, port: number, make: (seq: number) => unknown, label: string) {
  const mesh = new Mesh({
    self: "n1",
    peers: [{ id: "n1", host: "127.0.0.1", port: 0 }, { id: "n2", host: "127.0.0.1", port }],
    secret: SECRET,
    codec,
    logger: silentLogger,
  });
  let handler = () => {};
  mesh.onMessage("echo", () => handler());
  await mesh.start();
  while (!mesh.isConnected("n2")) await new Promise((resolve) => setTimeout(resolve, 5));
  const samples = Array.from({ length: 16 }, (_, i) => make(i));
  const client: EchoClient = {
    label: `mesh ${codec}, ${label}`,
    send: (seq) => mesh.send("n2", "echo", samples[seq & 15]),
    sendUnanswered: () => mesh.send("n2", UNANSWERED_CHANNEL, { t: "heartbeat-like" }),
    onEcho: (h) => handler = h,
    close: () => mesh.stop(),
  };
  return client;
}

/** The other direction: a member in a child process (n1, lower id) dials this process's mesh (n2). */
async function meshAcceptorClient(codec: CodecName): Promise<EchoClient> {
  const mesh = new Mesh({
    self: "n2",
    peers: [{ id: "n1", host: "127.0.0.1", port: 0 }, { id: "n2", host: "127.0.0.1", port: 0 }],
    secret: SECRET,
    codec,
    logger: silentLogger,
  });
  let handler = () => {};
  mesh.onMessage("echo", () => handler());
  await mesh.start();
  const { child } = await startChild(memberArgs("n1", `n1@127.0.0.1:0,n2@127.0.0.1:${mesh.port}`, codec));
  while (!mesh.isConnected("n1")) await new Promise((resolve) => setTimeout(resolve, 5));
  return {
    label: `mesh ${codec}, member dials this process`,
    send: (seq) => mesh.send("n1", "echo", vote(seq)),
    sendUnanswered: () => mesh.send("n1", UNANSWERED_CHANNEL, { t: "heartbeat-like" }),
    onEcho: (h) => handler = h,
    close: async () => {
      await mesh.stop();
      await child.stop();
    },
  };
}

async function latency(client: EchoClient, count: number): Promise<{ p50: number; p99: number }> {
  let resolve = () => {};
  client.onEcho(() => resolve());
  const times: number[] = [];
  for (let i = 0; i < count + count / 10; i++) {
    const echoed = new Promise<void>((r) => resolve = r);
    const start = performance.now();
    client.send(i);
    await echoed;
    if (i >= count / 10) times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length * 0.5)], p99: times[Math.floor(times.length * 0.99)] };
}

/**
 * The gap pattern: an unanswered message, 1-5 ms of quiet, then a message the peer echoes. Returns the times
 * from the second send to its echo.
 */
async function gapLatency(client: EchoClient, count: number): Promise<{ p50: number; p90: number }> {
  let resolve = () => {};
  client.onEcho(() => resolve());
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    client.sendUnanswered();
    await new Promise((r) => setTimeout(r, 1 + (i % 5)));
    const echoed = new Promise<void>((r) => resolve = r);
    const start = performance.now();
    client.send(i);
    await echoed;
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length * 0.5)], p90: times[Math.floor(times.length * 0.9)] };
}

/** Echo throughput: keep `window` messages in flight for about durationMs; messages per second one way. */
async function throughput(client: EchoClient, window: number, durationMs: number): Promise<number> {
  let sent = 0;
  let echoed = 0;
  let stopAt = Infinity;
  const done = Promise.withResolvers<void>();
  client.onEcho(() => {
    echoed++;
    if (performance.now() < stopAt) {
      if (!client.send(sent)) throw new Error(`${client.label}: send refused during the throughput run`);
      sent++;
    } else if (echoed === sent) done.resolve();
  });
  const start = performance.now();
  stopAt = start + durationMs;
  for (; sent < window; sent++) client.send(sent);
  await done.promise;
  return echoed / ((performance.now() - start) / 1000);
}

async function startChild(args: string[]): Promise<{ child: DenoChild; port: number }> {
  const child = spawnDenoChild(args, { cwd: root });
  const ready = await child.waitForLine((line) => line.event === "ready", 20_000);
  return { child, port: (ready.port ?? ready.clusterPort) as number };
}

function memberArgs(id: string, peers: string, codec: CodecName): string[] {
  return [
    "run",
    "--allow-net=127.0.0.1",
    `--allow-env=${DIALER_ENV_VARS.join(",")}`,
    "tests/_support/mesh_member.ts",
    "--id",
    id,
    "--peers",
    peers,
    "--secret-hex",
    Array.from(SECRET, (b) => b.toString(16).padStart(2, "0")).join(""),
    "--codec",
    codec,
    "--heartbeat-ms",
    "200",
  ];
}

async function socketPart(): Promise<void> {
  const latencyCount = QUICK ? 1000 : 5000;
  const durationMs = QUICK ? 700 : 2000;
  const raw = await startChild([
    "run",
    "--allow-net=127.0.0.1",
    // This file imports the mesh's dialer, and `ws` reads these when it loads.
    `--allow-env=${DIALER_ENV_VARS.join(",")}`,
    "tests/bench/mesh_bench.ts",
    "--raw-echo-server",
  ]);
  const members: Record<string, { child: DenoChild; port: number }> = {};
  try {
    for (const codec of CODEC_NAMES) {
      members[codec] = await startChild(memberArgs("n2", "n1@127.0.0.1:0,n2@127.0.0.1:0", codec));
    }
    const voteBytes = createCodec("msgpack").encodeShared(vote(0)).byteLength;

    console.log("\n## Round trip of one small message at a time (vote), two processes on loopback\n");
    console.log(table(["transport", "p50 ms", "p99 ms", "p50 vs raw"]));
    const rawSmall = await rawClient(raw.port, voteBytes);
    const rawLatency = await latency(rawSmall, latencyCount);
    console.log(row([rawSmall.label, rawLatency.p50.toFixed(3), rawLatency.p99.toFixed(3), "1.00"]));
    const rawWsSmall = await rawClient(raw.port, voteBytes, "ws");
    const rawWsLatency = await latency(rawWsSmall, latencyCount);
    console.log(
      row([
        rawWsSmall.label,
        rawWsLatency.p50.toFixed(3),
        rawWsLatency.p99.toFixed(3),
        (rawWsLatency.p50 / rawLatency.p50).toFixed(2),
      ]),
    );
    for (const codec of CODEC_NAMES) {
      const client = await meshClient(codec, members[codec].port, vote, "vote");
      const l = await latency(client, latencyCount);
      console.log(
        row([client.label, l.p50.toFixed(3), l.p99.toFixed(3), (l.p50 / rawLatency.p50).toFixed(2)]),
      );
      await client.close();
    }

    console.log("\n## Echo throughput, messages/s one way, window of messages in flight\n");
    console.log(table(["transport", "window", "msg/s", "MB/s", "vs raw"]));
    const kinds: { label: string; make: (seq: number) => unknown; window: number }[] = [
      { label: "vote", make: vote, window: 1000 },
      { label: "batch of 100 puts", make: batch100, window: 64 },
      { label: "64 KiB payload", make: payload64k, window: 16 },
    ];
    let rawRate = await throughput(rawSmall, 1000, durationMs);
    await rawSmall.close();
    let rawWsRate = await throughput(rawWsSmall, 1000, durationMs);
    await rawWsSmall.close();
    for (const kind of kinds) {
      const size = createCodec("msgpack").encodeShared(kind.make(0)).byteLength;
      if (kind.label !== "vote") {
        const rawSized = await rawClient(raw.port, size);
        rawRate = await throughput(rawSized, kind.window, durationMs);
        await rawSized.close();
        const rawWsSized = await rawClient(raw.port, size, "ws");
        rawWsRate = await throughput(rawWsSized, kind.window, durationMs);
        await rawWsSized.close();
      }
      console.log(
        row([`${RAW_LABEL.deno}, ${size} B`, kind.window, rawRate.toFixed(0), mb(rawRate * size), "1.00"]),
      );
      console.log(
        row([
          `${RAW_LABEL.ws}, ${size} B`,
          kind.window,
          rawWsRate.toFixed(0),
          mb(rawWsRate * size),
          (rawWsRate / rawRate).toFixed(2),
        ]),
      );
      for (const codec of CODEC_NAMES) {
        const client = await meshClient(codec, members[codec].port, kind.make, kind.label);
        const rate = await throughput(client, kind.window, durationMs);
        const wireBytes = createCodec(codec).encodeShared(kind.make(0)).byteLength;
        console.log(
          row([
            client.label,
            kind.window,
            rate.toFixed(0),
            mb(rate * wireBytes),
            (rate / rawRate).toFixed(2),
          ]),
        );
        await client.close();
      }
    }

    console.log(
      "\n## Gap pattern: unanswered message, 1-5 ms quiet, then a vote echoed back (Nagle + delayed ACK)\n",
    );
    console.log(table(["transport", "samples", "p50 ms", "p90 ms", "p50 vs raw Deno WebSocket"]));
    const gapCount = QUICK ? 60 : 200;
    let rawGapP50 = NaN;
    const gapClients: (() => Promise<EchoClient>)[] = [
      () => rawClient(raw.port, voteBytes, "deno"),
      () => rawClient(raw.port, voteBytes, "ws"),
      () => meshClient(DEFAULT_CODEC, members[DEFAULT_CODEC].port, vote, "this process dials the member"),
      () => meshAcceptorClient(DEFAULT_CODEC),
    ];
    for (const open of gapClients) {
      const client = await open();
      const g = await gapLatency(client, gapCount);
      if (Number.isNaN(rawGapP50)) rawGapP50 = g.p50;
      console.log(
        row([client.label, gapCount, g.p50.toFixed(3), g.p90.toFixed(3), (g.p50 / rawGapP50).toFixed(3)]),
      );
      await client.close();
    }
  } finally {
    await raw.child.stop();
    for (const member of Object.values(members)) await member.child.stop();
  }
}

// ------------------------------------------------------------------------------------------------- output

function table(headers: string[]): string {
  return `| ${headers.join(" | ")} |\n|${headers.map(() => " --- ").join("|")}|`;
}

function row(cells: (string | number)[]): string {
  return `| ${cells.join(" | ")} |`;
}

function mb(bytesPerSecond: number): string {
  return (bytesPerSecond / 1e6).toFixed(1);
}

console.log(`# Mesh benchmark (Deno ${Deno.version.deno}${QUICK ? ", --quick" : ""})`);
codecPart();
await socketPart();
