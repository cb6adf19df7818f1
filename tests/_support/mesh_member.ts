/**
 * A mesh member in its own process, for tests and benchmarks that need a peer they can SIGKILL or SIGSTOP.
 *
 *   deno run --allow-net=127.0.0.1 tests/_support/mesh_member.ts --id n2 --peers n1@127.0.0.1:4100,n2@127.0.0.1:0
 *     --secret-hex 00112233... [--codec msgpack|json] [--heartbeat-ms 200] [--dead-after-ms 1000]
 *
 * Prints JSON lines on stdout: {"event":"ready","nodeId","clusterPort"} once listening, then
 * {"event":"peerUp","peer"} and {"event":"peerDown","peer","reason"}. Every message on channel "echo" is sent
 * back to its sender on "echo"; a stdin line `{"setPeer":{"id","host","port"}}` changes a peer's address.
 * Exits when stdin closes.
 */

import { parseArgs } from "node:util";
import { Mesh, type MeshPeerAddress } from "../../runtime/net/mod.ts";
import type { CodecName } from "../../runtime/net/codec.ts";

const { values } = parseArgs({
  options: {
    id: { type: "string" },
    peers: { type: "string" },
    "secret-hex": { type: "string" },
    codec: { type: "string", default: "msgpack" },
    "heartbeat-ms": { type: "string", default: "200" },
    "dead-after-ms": { type: "string", default: "1000" },
  },
});

function fail(message: string): never {
  console.error(message);
  Deno.exit(2);
}

const self = values.id ?? fail("--id is required");
const peers: MeshPeerAddress[] = (values.peers ?? fail("--peers is required")).split(",").map((entry) => {
  const match = /^([^@]+)@(.+):(\d+)$/.exec(entry);
  if (!match) fail(`--peers: "${entry}" is not id@host:port`);
  return { id: match[1], host: match[2], port: Number(match[3]) };
});
const secretHex = values["secret-hex"] ?? fail("--secret-hex is required");
const secret = new Uint8Array(secretHex.match(/../g)!.map((h) => parseInt(h, 16)));

const print = (line: Record<string, unknown>) => console.log(JSON.stringify(line));
const mesh = new Mesh({
  self,
  peers,
  secret,
  codec: values.codec as CodecName,
  heartbeatMs: Number(values["heartbeat-ms"]),
  deadAfterMs: Number(values["dead-after-ms"]),
});
mesh.onPeerUp((peer) => print({ event: "peerUp", peer }));
mesh.onPeerDown((peer, reason) => print({ event: "peerDown", peer, reason }));
mesh.onMessage("echo", (from, message) => mesh.send(from, "echo", message));
await mesh.start();
print({ event: "ready", nodeId: self, clusterPort: mesh.port });

let buffered = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffered += chunk;
  let newline: number;
  while ((newline = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, newline);
    buffered = buffered.slice(newline + 1);
    const command = JSON.parse(line);
    if (command.setPeer) mesh.setPeerAddress(command.setPeer.id, command.setPeer.host, command.setPeer.port);
  }
}
await mesh.stop();
Deno.exit(0);
