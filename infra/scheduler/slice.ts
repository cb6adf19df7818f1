/**
 * The scheduler service (`ctx.infra.scheduler(job)`): cron and interval jobs of the caller's group, kept in
 * the consensus KV by the node-side engine (runtime/infra-host/scheduler.ts). Firing a job (calling the job's
 * slice method at its time) is driven by the nodes (the leader claims occurrences and calls through the
 * invoker), not by this slice.
 *
 * `run` (fire now) is never retried by the invoker after an unknown outcome (it would fire twice):
 * runtime/infra-host/service_routing.ts.
 */

import { defineSlice } from "@aether/slices";
import { forward } from "../_service.ts";

export default defineSlice({
  coordinates: "aether.infra:scheduler:1.0.0",
  methods: {
    schedule: forward("scheduler", "schedule", { name: "job" }),
    get: forward("scheduler", "get", { name: "job" }),
    pause: forward("scheduler", "pause", { name: "job" }),
    resume: forward("scheduler", "resume", { name: "job" }),
    delete: forward("scheduler", "delete", { name: "job" }),
    run: forward("scheduler", "run", { name: "job" }),
    history: forward("scheduler", "history", { name: "job" }),
  },
});
