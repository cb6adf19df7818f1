/**
 * The metrics endpoints:
 * - `GET /metrics`: Prometheus text of this node's latest sample; `?scope=cluster` every live node of the
 *   cluster snapshot this node holds (any node serves it), with `aether_node_up` for each node known.
 * - `GET /api/v1/metrics`: the cluster snapshot (JSON; `?scope=node` this node's own sample).
 * - `GET /api/v1/metrics/history?series=a,b&from=&to=&step=`: points of the 2-hour history.
 * - `GET /api/v1/invocations?window=60&slice=&method=`: per slice version and method, rate, error rate and
 *   p50/p95/p99 over the window, with the same per node.
 *
 * Every query parameter is checked; an unknown one, or a bad value, is a 400 naming it.
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { AetherError } from "../core/mod.ts";
import {
  MAX_QUERY_SERIES,
  MAX_WINDOW_SECONDS,
  type MetricsView,
  PROMETHEUS_CONTENT_TYPE,
  prometheusText,
} from "../metrics/mod.ts";
import { badRequest } from "./_problem.ts";
import { intParam, queryParam } from "./_input.ts";

/** The most characters a `series` parameter may hold. */
const MAX_SERIES_PARAM_CHARS = 20_000;

function checkParameters(c: Context, allowed: readonly string[]): void {
  for (const name of Object.keys(c.req.queries())) {
    if (!allowed.includes(name)) {
      throw badRequest(
        `query parameter ${name}: unknown; this endpoint takes ${allowed.join(", ") || "none"}`,
        {
          parameter: name,
        },
      );
    }
  }
}

/** `GET /metrics` (mounted at the root of the API port). */
export function prometheusRoutes(view: MetricsView): Hono {
  const app = new Hono();
  app.get("/metrics", (c) => {
    checkParameters(c, ["scope"]);
    const scope = queryParam(c, "scope") ?? "node";
    let text: string;
    if (scope === "node") {
      const local = view.local();
      text = prometheusText(local ? [local] : []);
    } else if (scope === "cluster") {
      const snapshot = view.snapshot();
      const nodes = snapshot?.nodes ?? [];
      text = prometheusText(
        nodes.filter((n) => !n.stale),
        nodes.map((n) => ({ node: n.node, up: !n.stale })),
      );
    } else {
      throw badRequest(`query parameter scope: "${scope}" is not node or cluster`, { parameter: "scope" });
    }
    return c.body(text, 200, { "content-type": PROMETHEUS_CONTENT_TYPE });
  });
  return app;
}

/** The JSON endpoints under /api/v1. */
export function metricsRoutes(view: MetricsView): Hono {
  const app = new Hono();
  app.get("/metrics", (c) => {
    checkParameters(c, ["scope"]);
    const scope = queryParam(c, "scope") ?? "cluster";
    if (scope === "node") {
      const local = view.local();
      if (!local) throw new AetherError("unavailable", "this node has not taken its first sample yet");
      return c.json(local);
    }
    if (scope !== "cluster") {
      throw badRequest(`query parameter scope: "${scope}" is not cluster or node`, { parameter: "scope" });
    }
    const snapshot = view.snapshot();
    if (!snapshot) {
      throw new AetherError(
        "unavailable",
        "no cluster metrics snapshot yet: the leader broadcasts one every second once it is elected",
      );
    }
    return c.json(snapshot);
  });

  app.get("/metrics/history", (c) => {
    checkParameters(c, ["series", "from", "to", "step"]);
    const seriesText = queryParam(c, "series") ?? "";
    if (seriesText.length > MAX_SERIES_PARAM_CHARS) {
      throw badRequest(`query parameter series: longer than ${MAX_SERIES_PARAM_CHARS} characters`, {
        parameter: "series",
      });
    }
    const series = seriesText === ""
      ? []
      : seriesText.split(",").map((s) => s.trim()).filter((s) => s !== "");
    if (series.length > MAX_QUERY_SERIES) {
      throw badRequest(`query parameter series: at most ${MAX_QUERY_SERIES} names, got ${series.length}`, {
        parameter: "series",
      });
    }
    const now = Date.now();
    const from = timeParam(c, "from", now);
    const to = timeParam(c, "to", now);
    const step = intParam(c, "step", { min: 1, max: 7_200 });
    return c.json(view.history({ series, fromMs: from, toMs: to, stepSeconds: step }));
  });

  app.get("/invocations", (c) => {
    checkParameters(c, ["window", "slice", "method"]);
    const window = intParam(c, "window", { min: 1, max: MAX_WINDOW_SECONDS }) ?? 60;
    const slice = queryParam(c, "slice");
    const method = queryParam(c, "method");
    const all = view.invocations(window);
    const invocations = all.filter((i) =>
      (slice === undefined || i.artifact === slice || `${i.artifact}:${i.version}` === slice) &&
      (method === undefined || i.method === method)
    );
    return c.json({ windowSeconds: window, invocations });
  });
  return app;
}

/**
 * A time parameter: epoch milliseconds, an ISO 8601 time, or a duration before now (`15m`, `2h`, `90s`).
 * Undefined when absent.
 */
function timeParam(c: Context, name: string, nowMs: number): number | undefined {
  const text = queryParam(c, name);
  if (text === undefined || text === "") return undefined;
  if (/^\d{10,15}$/.test(text)) return Number(text);
  const duration = /^(\d{1,7})(s|m|h)$/.exec(text);
  if (duration) return nowMs - Number(duration[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[duration[2]]!;
  const parsed = /^\d{4}-\d{2}-\d{2}T/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(parsed)) {
    throw badRequest(
      `query parameter ${name}: "${text.slice(0, 100)}" is not epoch milliseconds, an ISO 8601 time ` +
        `or a duration before now (90s, 15m, 2h)`,
      { parameter: name },
    );
  }
  return parsed;
}
