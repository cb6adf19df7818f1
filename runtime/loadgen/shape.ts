/**
 * Load shapes: the target rate as a function of time, written as a few segments, so a load can show a
 * controller realistic traffic (`aether load --shape "10/s for 10s, ramp 10..200/s over 30s"`).
 *
 * Grammar (segments separated by `,` or `;`, or one a line in a shape file where `#` starts a comment):
 *
 *   RATE for TIME                         a step: RATE a second for TIME (`step RATE for TIME` too)
 *   ramp A..B/s over TIME                 linear from A to B a second
 *   sine A..B/s period TIME for TIME      a cycle between A and B: starts at A, at B half a period in
 *   spike RATE for TIME                   a step meant as a burst (named apart in reports)
 *   idle for TIME                         nothing sent for TIME (0/s; a slice may scale to zero)
 *
 * RATE is `200/s`, `6000/m` or `200` (per second); a range's unit (`10..400/s`) holds for both ends. TIME is
 * `30s`, `500ms`, `2m`, `1h` or `30` (seconds). A mistake is refused with an error naming the segment and the
 * column (or the file's line and column) and what was expected there.
 *
 * The shape also schedules an open-loop load: request `i` (from 0) is due when the shape's cumulative count of
 * requests reaches `i`, so the requests sent over any stretch are the integral of the rate over it (within
 * one), and the total is that integral over the whole shape, rounded up.
 */

import { AetherError } from "../core/mod.ts";
import { MAX_DURATION_MS, MAX_RATE_PER_SECOND } from "./parse.ts";

/** Longest shape text accepted (a shape file is read whole). */
export const MAX_SHAPE_CHARS = 64 * 1024;
/** Most segments in one shape. */
export const MAX_SHAPE_SEGMENTS = 1_000;

export type SegmentKind = "step" | "ramp" | "sine" | "spike" | "idle";

export interface ShapeSegment {
  kind: SegmentKind;
  /** The segment as written (trimmed), for messages. */
  source: string;
  /** Offset from the start of the shape. */
  startMs: number;
  durationMs: number;
  /** Rate a second at the start and the end (a sine: its low and its high). */
  fromPerSecond: number;
  toPerSecond: number;
  /** A sine's period. */
  periodMs?: number;
}

/** Where a segment came from: for errors. */
interface Located {
  text: string;
  /** Offset of `text` in the whole input. */
  offset: number;
  /** 1-based segment number. */
  index: number;
  /** 1-based line and the offset of that line's start, for shape files. */
  line?: number;
  lineOffset?: number;
}

interface Token {
  text: string;
  /** Offset in the segment's text. */
  at: number;
}

const NUM = String.raw`(\d+(?:\.\d+)?)`;
const UNIT = String.raw`(?:\/(s|sec|m|min))?`;
const RATE = new RegExp(`^${NUM}${UNIT}$`);
const RANGE = new RegExp(`^${NUM}${UNIT}\\.\\.${NUM}${UNIT}$`);
const TIME = new RegExp(`^${NUM}(ms|s|m|h)?$`);
const FORMS = '"RATE for TIME", "ramp A..B/s over TIME", "sine A..B/s period TIME for TIME", ' +
  '"spike RATE for TIME" or "idle for TIME"';

/** One segment's parser: reads tokens in order and says where a mistake is. */
class SegmentReader {
  readonly #tokens: Token[];
  #next = 0;

  constructor(readonly where: Located, readonly label: string) {
    this.#tokens = [...where.text.matchAll(/\S+/g)].map((m) => ({ text: m[0], at: m.index! }));
  }

  peek(): Token | undefined {
    return this.#tokens[this.#next];
  }

  take(what: string): Token {
    const token = this.#tokens[this.#next++];
    if (!token) throw this.error(this.where.text.trimEnd().length, `expected ${what} after the end`);
    return token;
  }

  keyword(word: string, example: string): void {
    const token = this.take(`"${word}"`);
    if (token.text.toLowerCase() !== word) {
      throw this.error(token.at, `expected "${word}" but found "${token.text}" (like "${example}")`);
    }
  }

  rate(): number {
    const token = this.take("a rate like 100/s");
    const m = RATE.exec(token.text);
    if (!m) throw this.error(token.at, `"${token.text}" is not a rate like 100/s, 6000/m or 100`);
    return this.#perSecond(token, m[1], m[2]);
  }

  range(): [number, number] {
    const token = this.take("a range like 10..400/s");
    const m = RANGE.exec(token.text);
    if (!m) throw this.error(token.at, `"${token.text}" is not a range of rates like 10..400/s`);
    if (m[2] && m[4] && m[2][0] !== m[4][0]) {
      throw this.error(token.at, `"${token.text}" mixes units; write both ends in one, like 10..400/s`);
    }
    const unit = m[2] ?? m[4];
    return [this.#perSecond(token, m[1], unit), this.#perSecond(token, m[3], unit)];
  }

  time(): number {
    const token = this.take("a time like 30s");
    const m = TIME.exec(token.text);
    if (!m) throw this.error(token.at, `"${token.text}" is not a time like 30s, 500ms, 2m or 1h`);
    const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
    if (ms <= 0 || ms > MAX_DURATION_MS) {
      throw this.error(token.at, `"${token.text}" must be above 0 and at most 24h`);
    }
    return ms;
  }

  end(): void {
    const token = this.peek();
    if (token) throw this.error(token.at, `unexpected "${token.text}" after a complete segment`);
  }

  /** An error pointing at `at` (an offset in the segment's text). */
  error(at: number, message: string): AetherError {
    const w = this.where;
    const offset = w.offset + at;
    const column = w.line === undefined ? offset + 1 : offset - w.lineOffset! + 1;
    const place = w.line === undefined
      ? `${this.label} segment ${w.index} "${w.text.trim()}", column ${column}`
      : `${this.label} line ${w.line}, column ${column} ("${w.text.trim()}")`;
    return new AetherError("invalid_flag", `${place}: ${message}`, {
      field: this.label,
      segment: w.index,
      ...(w.line === undefined ? {} : { line: w.line }),
      column,
    });
  }

  #perSecond(token: Token, value: string, unit: string | undefined): number {
    const perSecond = Number(value) / (unit?.startsWith("m") ? 60 : 1);
    if (perSecond > MAX_RATE_PER_SECOND) {
      throw this.error(token.at, `"${token.text}" is above the most, ${MAX_RATE_PER_SECOND}/s`);
    }
    return perSecond;
  }
}

/** One segment's kind and figures (without its place in time). */
function readSegment(r: SegmentReader): Omit<ShapeSegment, "startMs" | "source"> {
  const first = r.peek();
  if (!first) throw r.error(0, `an empty segment; expected ${FORMS}`);
  const word = first.text.toLowerCase();
  let segment: Omit<ShapeSegment, "startMs" | "source">;
  if (word === "ramp") {
    r.take("ramp");
    const [from, to] = r.range();
    r.keyword("over", "ramp 10..400/s over 60s");
    segment = { kind: "ramp", fromPerSecond: from, toPerSecond: to, durationMs: r.time() };
  } else if (word === "sine") {
    r.take("sine");
    const rangeAt = r.peek()?.at ?? 0;
    const [low, high] = r.range();
    if (low > high) throw r.error(rangeAt, `a sine goes from its low to its high: write ${high}..${low}`);
    r.keyword("period", "sine 50..150/s period 60s for 2m");
    const periodMs = r.time();
    r.keyword("for", "sine 50..150/s period 60s for 2m");
    segment = { kind: "sine", fromPerSecond: low, toPerSecond: high, periodMs, durationMs: r.time() };
  } else if (word === "idle") {
    r.take("idle");
    r.keyword("for", "idle for 30s");
    segment = { kind: "idle", fromPerSecond: 0, toPerSecond: 0, durationMs: r.time() };
  } else if (word === "spike" || word === "step" || /^\d/.test(word)) {
    if (!/^\d/.test(word)) r.take(word);
    const rate = r.rate();
    r.keyword("for", `${word === "spike" ? "spike 500/s" : "100/s"} for 10s`);
    const kind = word === "spike" ? "spike" : "step";
    segment = { kind, fromPerSecond: rate, toPerSecond: rate, durationMs: r.time() };
  } else {
    throw r.error(first.at, `"${first.text}" does not start a segment; expected ${FORMS}`);
  }
  r.end();
  return segment;
}

/** Requests over the first `t` ms of a segment (the integral of its rate). */
function countWithin(s: ShapeSegment, t: number): number {
  const a = s.fromPerSecond, b = s.toPerSecond;
  switch (s.kind) {
    case "ramp":
      return (a * t + ((b - a) * t * t) / (2 * s.durationMs)) / 1000;
    case "sine": {
      const w = (2 * Math.PI) / s.periodMs!;
      return (a * t + ((b - a) / 2) * (t - Math.sin(w * t) / w)) / 1000;
    }
    default:
      return (a * t) / 1000;
  }
}

/** The rate a second `t` ms into a segment. */
function rateWithin(s: ShapeSegment, t: number): number {
  const a = s.fromPerSecond, b = s.toPerSecond;
  if (s.kind === "ramp") return a + ((b - a) * t) / s.durationMs;
  if (s.kind === "sine") return a + ((b - a) * (1 - Math.cos((2 * Math.PI * t) / s.periodMs!))) / 2;
  return a;
}

/** The earliest `t` within a segment where its count reaches `x` (0 < x ≤ its total). */
function timeWithin(s: ShapeSegment, x: number): number {
  const a = s.fromPerSecond, b = s.toPerSecond;
  if (x <= 0) return 0;
  if (s.kind === "ramp") {
    // a·t + k·t²/2 = 1000x with k = (b - a) / D; the root written so that k → 0 stays exact.
    const k = (b - a) / s.durationMs;
    // (A ramp down to 0 at its very end can round the discriminant a hair below 0.)
    return Math.min(s.durationMs, (2000 * x) / (a + Math.sqrt(Math.max(0, a * a + 2000 * k * x))));
  }
  if (s.kind === "sine") {
    // The count only grows (the rate is never negative): bisection to well below a microsecond.
    let lo = 0, hi = s.durationMs;
    for (let i = 0; i < 60 && hi - lo > 1e-4; i++) {
      const mid = (lo + hi) / 2;
      if (countWithin(s, mid) < x) lo = mid;
      else hi = mid;
    }
    return hi;
  }
  return Math.min(s.durationMs, (1000 * x) / a);
}

/** A parsed shape: the rate over time, and the open-loop schedule it gives. */
export class LoadShape {
  readonly segments: readonly ShapeSegment[];
  readonly durationMs: number;
  /** The integral of the rate over the whole shape (requests, fractional). */
  readonly expectedRequests: number;
  /** Requests the schedule sends: `expectedRequests` rounded up. */
  readonly planned: number;
  /** Requests due before each segment starts. */
  readonly #countBefore: number[];

  constructor(segments: readonly ShapeSegment[]) {
    this.segments = segments;
    this.#countBefore = [];
    let count = 0;
    for (const s of segments) {
      this.#countBefore.push(count);
      count += countWithin(s, s.durationMs);
    }
    const last = segments.at(-1);
    this.durationMs = last ? last.startMs + last.durationMs : 0;
    this.expectedRequests = count;
    this.planned = Math.ceil(count - 1e-9);
  }

  /** The target rate (requests a second) `tMs` after the start; 0 outside the shape. */
  rateAt(tMs: number): number {
    const i = this.segmentIndexAt(tMs);
    return i < 0 ? 0 : rateWithin(this.segments[i], tMs - this.segments[i].startMs);
  }

  /** Requests due by `tMs` after the start (the integral of the rate up to it, fractional). */
  requestsBy(tMs: number): number {
    if (tMs >= this.durationMs) return this.expectedRequests;
    const i = this.segmentIndexAt(tMs);
    if (i < 0) return 0;
    return this.#countBefore[i] + countWithin(this.segments[i], tMs - this.segments[i].startMs);
  }

  /** When request `index` (from 0, below `planned`) is due, in ms after the start. */
  dueAtMs(index: number): number {
    // The first segment whose end count passes `index`: a segment at 0/s is skipped, not waited in.
    let lo = 0, hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const end = this.#countBefore[mid] + countWithin(this.segments[mid], this.segments[mid].durationMs);
      if (end > index) hi = mid;
      else lo = mid + 1;
    }
    const s = this.segments[lo];
    return s.startMs + timeWithin(s, index - this.#countBefore[lo]);
  }

  /** The segments as text in the grammar's words, e.g. `10/s for 10s, ramp 10..200/s over 30s`. */
  describe(): string {
    return this.segments.map(describeSegment).join(", ");
  }

  /** The index of the segment playing `tMs` after the start; -1 outside the shape. */
  segmentIndexAt(tMs: number): number {
    if (tMs < 0 || tMs >= this.durationMs) return -1;
    let lo = 0, hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid].startMs <= tMs) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

const n = (value: number) => String(Math.round(value * 1000) / 1000);
const time = (ms: number) =>
  ms % 3_600_000 === 0
    ? `${ms / 3_600_000}h`
    : ms % 60_000 === 0
    ? `${ms / 60_000}m`
    : ms % 1000 === 0
    ? `${ms / 1000}s`
    : `${n(ms)}ms`;

/** One segment in the grammar's words, e.g. `ramp 10..200/s over 30s`. */
export function describeSegment(s: ShapeSegment): string {
  const over = time(s.durationMs);
  switch (s.kind) {
    case "ramp":
      return `ramp ${n(s.fromPerSecond)}..${n(s.toPerSecond)}/s over ${over}`;
    case "sine":
      return `sine ${n(s.fromPerSecond)}..${n(s.toPerSecond)}/s period ${time(s.periodMs!)} for ${over}`;
    case "spike":
      return `spike ${n(s.fromPerSecond)}/s for ${over}`;
    case "idle":
      return `idle for ${over}`;
    default:
      return `${n(s.fromPerSecond)}/s for ${over}`;
  }
}

/** Splits `text` into segments at `,` and `;` (and, for a file, at line ends, dropping `#` comments). */
function locate(text: string, file: boolean): Located[] {
  const pieces: Located[] = [];
  const lines = file ? text.split("\n") : [text];
  let lineOffset = 0;
  lines.forEach((rawLine, lineIndex) => {
    const hash = file ? rawLine.indexOf("#") : -1;
    const line = (hash >= 0 ? rawLine.slice(0, hash) : rawLine).replace(/\r$/, "");
    let start = 0;
    for (const part of line.split(/[,;]/)) {
      if (part.trim() !== "" || !file) {
        pieces.push({
          text: part,
          offset: lineOffset + start,
          index: pieces.length + 1,
          ...(file ? { line: lineIndex + 1, lineOffset } : {}),
        });
      }
      start += part.length + 1;
    }
    lineOffset += rawLine.length + 1;
  });
  return pieces;
}

/**
 * Parses a shape. `label` names where it came from in errors (`--shape`, or a file's name with `file`, where
 * each line holds segments and `#` starts a comment). Throws AetherError("invalid_flag") naming the segment
 * and the column.
 */
export function parseShape(text: string, label = "shape", options: { file?: boolean } = {}): LoadShape {
  const file = options.file === true;
  if (text.length > MAX_SHAPE_CHARS) {
    throw new AetherError("invalid_flag", `${label} is longer than ${MAX_SHAPE_CHARS} characters`, {
      field: label,
    });
  }
  const located = locate(text, file);
  if (located.length === 0 || (!file && located.length === 1 && located[0].text.trim() === "")) {
    throw new AetherError("invalid_flag", `${label} has no segment; expected ${FORMS}`, { field: label });
  }
  if (located.length > MAX_SHAPE_SEGMENTS) {
    throw new AetherError(
      "invalid_flag",
      `${label} has ${located.length} segments, more than the most, ${MAX_SHAPE_SEGMENTS}`,
      { field: label },
    );
  }
  const segments: ShapeSegment[] = [];
  let startMs = 0;
  for (const where of located) {
    const reader = new SegmentReader(where, label);
    const segment = { ...readSegment(reader), startMs, source: where.text.trim() };
    startMs += segment.durationMs;
    if (startMs > MAX_DURATION_MS) {
      throw reader.error(where.text.search(/\S/), "the shape runs past 24h with this segment");
    }
    segments.push(segment);
  }
  const shape = new LoadShape(segments);
  if (shape.planned < 1) {
    throw new AetherError("invalid_flag", `${label} "${shape.describe()}" sends no request at all`, {
      field: label,
    });
  }
  return shape;
}
