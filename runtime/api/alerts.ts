/**
 * Alert rules and alerts.
 *
 * GET /api/v1/alerts/rules            every rule in `thresholds/`, with its text form (`expr`)
 * PUT /api/v1/alerts/rules/{name}     creates or replaces a rule: `{"expr": "p99 of g:a/m > 200ms", "for": "30s",
 *                                     "severity": "critical", "summary": "..."}` (or the record's fields)
 * DELETE /api/v1/alerts/rules/{name}  removes a rule (its alerts resolve at the leader's next evaluation)
 * GET /api/v1/alerts                  the alerts pending and firing now (any node answers: every node keeps the
 *                                     leader's alert events), `?resolved=true` adds the recently resolved
 */

import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import {
  ALERT_RULE_NAME,
  type AlertRuleRecord,
  decodeEntry,
  encodeEntry,
  expressionOf,
  KEY_PREFIXES,
  kvKeys,
  MAX_ALERT_FOR_MS,
  MAX_ALERT_RULES,
  MAX_ALERT_WINDOW_MS,
  parseAlertExpression,
} from "../model/mod.ts";
import { badRequest, boolParam } from "./_problem.ts";
import type { ApiDeps } from "./deps.ts";

/** Largest PUT body. */
const MAX_RULE_BODY_BYTES = 16 * 1024;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const BODY_FIELDS = [
  "expr",
  "for",
  "forMs",
  "window",
  "windowMs",
  "severity",
  "summary",
  "metric",
  "slice",
  "method",
  "node",
  "quantile",
  "op",
  "threshold",
];

/** A rule as the API shows it. */
export interface RuleAnswer extends AlertRuleRecord {
  name: string;
  expr: string;
}

/** `500ms`, `30s`, `1m`, `2h` or `0` in ms; a 400 naming `field` otherwise. */
export function parseDurationMs(text: unknown, field: string, maxMs: number): number {
  const m = typeof text === "string" ? /^(\d{1,9})(ms|s|m|h)?$/.exec(text.trim()) : null;
  const ms = m ? Number(m[1]) * (m[2] ? DURATION_MS[m[2]] : m[1] === "0" ? 1 : NaN) : NaN;
  if (!Number.isFinite(ms) || ms > maxMs) {
    throw badRequest(
      `${field}: ${JSON.stringify(text)} is not a duration like 500ms, 30s, 1m or 2h (at most ${
        maxMs / 60_000
      } min)`,
      { field },
    );
  }
  return ms;
}

function ruleName(name: string): string {
  if (!ALERT_RULE_NAME.test(name)) {
    throw badRequest(
      `rule name "${
        name.slice(0, 80)
      }": lower-case letters, digits, "_", "." and "-", starting with a letter or digit, at most 64`,
      { field: "name" },
    );
  }
  return name;
}

/** The record a PUT body describes (the expression or the fields; `for`/`window` as durations). */
export function ruleFromBody(body: unknown, nowMs: number): AlertRuleRecord {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badRequest(
      'the body must be a JSON object such as {"expr": "p99 of group:artifact/method > 200ms", "for": "30s"}',
    );
  }
  const input = body as Record<string, unknown>;
  for (const field of Object.keys(input)) {
    if (!BODY_FIELDS.includes(field)) {
      throw badRequest(`${field}: not a field of a rule; the fields are ${BODY_FIELDS.join(", ")}`, {
        field,
      });
    }
  }
  const record: Record<string, unknown> = {};
  if (input.expr !== undefined) {
    if (typeof input.expr !== "string") throw badRequest("expr: must be text", { field: "expr" });
    Object.assign(record, parseAlertExpression(input.expr));
  }
  for (const field of ["metric", "slice", "method", "node", "quantile", "op", "threshold", "summary"]) {
    if (input[field] !== undefined) record[field] = input[field];
  }
  record.forMs = input.for !== undefined
    ? parseDurationMs(input.for, "for", MAX_ALERT_FOR_MS)
    : (input.forMs ?? 0);
  const windowMs = input.window !== undefined
    ? parseDurationMs(input.window, "window", MAX_ALERT_WINDOW_MS)
    : input.windowMs;
  if (windowMs !== undefined) record.windowMs = windowMs;
  record.severity = input.severity ?? "warning";
  record.updatedAt = nowMs;
  if (record.metric === undefined) {
    throw badRequest(
      'expr is missing: say what to watch, e.g. "p99 of org.example:orders/placeOrder > 200ms"',
      {
        field: "expr",
      },
    );
  }
  return record as unknown as AlertRuleRecord;
}

function answer(name: string, rule: AlertRuleRecord): RuleAnswer {
  return { name, expr: expressionOf(rule), ...rule };
}

/** The rules stored now, by name. */
function listRules(deps: ApiDeps): RuleAnswer[] {
  const { items } = deps.kv.range(KEY_PREFIXES.thresholds, { limit: MAX_ALERT_RULES + 1 });
  const rules: RuleAnswer[] = [];
  for (const entry of items) {
    try {
      const decoded = decodeEntry(entry.key, entry.value);
      if (decoded.family === "threshold") rules.push(answer(decoded.key.metric, decoded.value));
    } catch (e) {
      deps.log.warn("alert rule does not decode", { key: entry.key, error: (e as Error).message });
    }
  }
  return rules;
}

export function alertRoutes(deps: ApiDeps): Hono {
  const app = new Hono();

  app.get("/alerts/rules", (c) => c.json({ rules: listRules(deps) }));

  app.put("/alerts/rules/:name", async (c) => {
    const name = ruleName(c.req.param("name"));
    const text = await c.req.text();
    if (text.length > MAX_RULE_BODY_BYTES) {
      throw new AetherError("too_large", `the rule is larger than ${MAX_RULE_BODY_BYTES} bytes`);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw badRequest(`the body is not JSON: ${(e as Error).message}`);
    }
    const rule = ruleFromBody(body, Date.now());
    const key = kvKeys.threshold(name);
    const value = encodeEntry(key, rule);
    const existing = await deps.kv.get(key);
    if (
      !existing &&
      deps.kv.range(KEY_PREFIXES.thresholds, { limit: MAX_ALERT_RULES }).items.length >= MAX_ALERT_RULES
    ) {
      throw new AetherError(
        "conflict",
        `the cluster already has ${MAX_ALERT_RULES} alert rules; delete one first`,
      );
    }
    const { revision } = await deps.kv.write({ type: "put", key, value });
    return c.json({ ...answer(name, rule), created: !existing, revision }, existing ? 200 : 201);
  });

  app.delete("/alerts/rules/:name", async (c) => {
    const name = ruleName(c.req.param("name"));
    const key = kvKeys.threshold(name);
    const outcome = await deps.kv.write({ type: "delete", key });
    if (!outcome.deleted) throw new AetherError("not_found", `there is no alert rule "${name}"`, { name });
    return c.json({ name, deleted: true, revision: outcome.revision });
  });

  app.get("/alerts", (c) => {
    for (const name of Object.keys(c.req.queries())) {
      if (name !== "resolved") {
        throw badRequest(`query parameter ${name}: unknown; the parameter is resolved`);
      }
    }
    const board = deps.alerts;
    if (!board) throw new AetherError("unavailable", "alerts are not running on this node");
    const body: Record<string, unknown> = { alerts: board.active() };
    if (boolParam(c, "resolved")) body.resolved = board.recentlyResolved();
    return c.json(body);
  });

  return app;
}
