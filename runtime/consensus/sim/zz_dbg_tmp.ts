import { Batcher } from "../batcher.ts";
import { DEFAULT_SIM_OPTIONS, runSimulation } from "./simulator.ts";
const od = Batcher.prototype.onDropped;
Batcher.prototype.onDropped = function (ids: string[]) {
  if (this.inFlight && ids.includes(this.inFlight)) console.log("dropped in flight", this.inFlight);
  return od.call(this, ids);
};
const dd = Batcher.prototype.onDecided;
Batcher.prototype.onDecided = function (id: string, r: unknown[] | null) {
  if (r === null && this.inFlight === id) console.log("duplicate result for in-flight", id);
  return dd.call(this, id, r as never);
};
for (const [seed, members, dur] of [[10021, 3, 3000], [20007, 5, 20000]]) {
  const r = runSimulation({
    ...DEFAULT_SIM_OPTIONS,
    seed,
    members,
    faults: members === 3 ? "net" : "all",
    durationMs: dur,
  });
  console.log(seed, r.failure?.split("\n")[0]);
}
