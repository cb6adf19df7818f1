// TEMPORARY A/B throughput: old (Deno WebSocket) vs new (ws) vs new with zero mask, alternating rounds in one process.
import { Mesh as NewMesh } from "./mesh.ts";
import { Mesh as OldMesh } from "./zz_mesh_old.ts";
import { Mesh as ZeroMesh } from "./zz_mesh_zero.ts";
import { silentLogger } from "../core/log.ts";
import { spawnDenoChild } from "../../tests/_support/child.ts";
const SECRET = new TextEncoder().encode("mesh-benchmark-secret-0123456789");
const hex = Array.from(SECRET, (b) => b.toString(16).padStart(2, "0")).join("");
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed) & 0xff);
const vote = (seq: number) => ({ t: "vote1", phase: 100_000 + seq, round: 1, value: 1, batchId: "n1:7f3a:123456" });
const batch = (seq: number) => ({ t: "propose", phase: seq, batch: { id: `n1:${seq}`, commands: Array.from({ length: 100 }, (_, i) => ({ type: "put", key: `app/users/${String(seq * 100 + i).padStart(8, "0")}`, value: bytes(100, i) })) } });
const big = (seq: number) => ({ id: seq, body: bytes(65536, seq) });
const children: ReturnType<typeof spawnDenoChild>[] = [];
async function member() {
  const child = spawnDenoChild(["run", "--allow-net=127.0.0.1", "--allow-env", "tests/_support/mesh_member.ts", "--id", "n2", "--peers", "n1@127.0.0.1:0,n2@127.0.0.1:0", "--secret-hex", hex], { cwd: "/work/main" });
  children.push(child);
  return (await child.waitForLine((l) => l.event === "ready", 20000)).clusterPort as number;
}
type AnyMesh = { send(to: string, ch: string, m: unknown): boolean; onMessage(ch: string, h: () => void): void; start(): Promise<void>; stop(): Promise<void>; isConnected(id: string): boolean };
async function open(M: new (c: any) => AnyMesh) {
  const port = await member(); // one member per variant: a member accepts one connection per peer id
  const mesh = new M({ self: "n1", peers: [{ id: "n1", host: "127.0.0.1", port: 0 }, { id: "n2", host: "127.0.0.1", port }], secret: SECRET, logger: silentLogger });
  let handler = () => {};
  mesh.onMessage("echo", () => handler());
  await mesh.start();
  while (!mesh.isConnected("n2")) await new Promise((r) => setTimeout(r, 5));
  return { mesh, set: (h: () => void) => handler = h };
}
async function tput(m: { mesh: AnyMesh; set: (h: () => void) => void }, make: (s: number) => unknown, window: number, ms: number) {
  const samples = Array.from({ length: 16 }, (_, i) => make(i));
  let sent = 0, echoed = 0; const done = Promise.withResolvers<void>();
  const start = performance.now(); const stopAt = start + ms;
  m.set(() => { echoed++; if (performance.now() < stopAt) { if (!m.mesh.send("n2", "echo", samples[sent & 15])) throw new Error("refused"); sent++; } else if (echoed === sent) done.resolve(); });
  for (; sent < window; sent++) m.mesh.send("n2", "echo", samples[sent & 15]);
  await done.promise;
  return echoed / ((performance.now() - start) / 1000);
}
const variants = { old: await open(OldMesh as any), ws: await open(NewMesh as any), wsZeroMask: await open(ZeroMesh as any) };
const kinds = [["vote", vote, 1000], ["batch", batch, 64], ["64k", big, 16]] as const;
const results: Record<string, number[]> = {};
for (const [, make, w] of kinds) for (const v of Object.values(variants)) await tput(v, make, w, 300); // warm-up
const rounds = Number(Deno.args[0] ?? 5);
for (let r = 0; r < rounds; r++) {
  for (const [kname, make, w] of kinds) {
    for (const [vname, v] of Object.entries(variants)) (results[`${kname} ${vname}`] ??= []).push(await tput(v, make, w, 1000));
  }
}
for (const [k, v] of Object.entries(results)) { const s = [...v].sort((a, b) => a - b); console.log(k.padEnd(18), "median", s[Math.floor(s.length / 2)].toFixed(0), " all", v.map((x) => x.toFixed(0)).join(" ")); }
for (const v of Object.values(variants)) await v.mesh.stop();
for (const c of children) await c.stop();
