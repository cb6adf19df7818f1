import { EventQueue } from "./_queue.ts";
import { SimMember } from "./member.ts";
import { runSimulation, DEFAULT_SIM_OPTIONS } from "./simulator.ts";
const op = EventQueue.prototype.pop;
let at = 0;
EventQueue.prototype.pop = function () { const e = op.call(this); if (e) at = e.atMs; return e; };
const ot = SimMember.prototype.tick;
const hist = new Map<string, string[]>();
SimMember.prototype.tick = function () {
  const r = ot.call(this);
  const e = this.engine!;
  const key = `${e.lastDecided}/${e.busy ? "busy" : "idle"}/p${e.pendingCount}`;
  const h = hist.get(this.id) ?? [];
  if (!h.length || !h[h.length - 1].endsWith(key)) h.push(`${at}:${key}`);
  hist.set(this.id, h);
  return r;
};
runSimulation({ ...DEFAULT_SIM_OPTIONS, seed: 10038, members: 5, faults: "net" });
for (const [id, h] of hist) console.log(id, h.slice(-4).join("  "));
