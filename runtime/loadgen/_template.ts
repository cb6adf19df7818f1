/**
 * Request templates for the load generator: text with `${...}` patterns that are expanded for every request,
 * so each request differs (the same patterns as the original Forge's load generator):
 *
 * | pattern | expands to |
 * | --- | --- |
 * | `${uuid}` | a random UUID v4 |
 * | `${random:SKU-#####}` | the shape with every `#` a random digit and every `?` a random letter A-Z |
 * | `${range:1-5}` | a random integer from 1 to 5, both included (`${range:-10--1}` works too) |
 * | `${choice:a,b,c}` | one of the comma-separated options |
 * | `${seq:1}` | 1, 2, 3, ... one more per request (`${seq}` starts at 1) |
 * | `$${` | a literal `${` |
 *
 * Substitution is textual: inside JSON, write `"${uuid}"` for a string and `${range:1-5}` (no quotes) for a
 * number. Randomness comes from a seeded `Rng`, so a seed reproduces every body.
 */

import { AetherError, type Rng } from "../core/mod.ts";

type Part = string | ((rng: Rng) => string);

export interface Template {
  /** The text as written. */
  readonly source: string;
  /** True when the text has no patterns: every expansion is the same. */
  readonly isStatic: boolean;
  /** The next expansion (advances `${seq}` counters). */
  expand(rng: Rng): string;
}

const PATTERNS = ["uuid", "random", "range", "choice", "seq"];

function position(text: string, index: number): string {
  const before = text.slice(0, index);
  const line = before.split("\n").length;
  const column = index - before.lastIndexOf("\n");
  return `line ${line}, column ${column}`;
}

function hex(n: number): string {
  return n.toString(16).padStart(8, "0");
}

/** A random v4 UUID drawn from `rng`. */
export function uuidFrom(rng: Rng): string {
  const h = hex(rng.nextUint32()) + hex(rng.nextUint32()) + hex(rng.nextUint32()) + hex(rng.nextUint32());
  const variant = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${
    h.slice(20, 32)
  }`;
}

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

function compilePattern(name: string, arg: string | undefined, fail: (why: string) => never): Part {
  switch (name) {
    case "uuid":
      if (arg !== undefined) fail("${uuid} takes no argument");
      return uuidFrom;
    case "random": {
      if (!arg || !/[#?]/.test(arg)) {
        fail('${random:SHAPE} needs a shape with # (digit) or ? (letter), e.g. "SKU-#####"');
      }
      const shape = arg;
      return (rng) => {
        let out = "";
        for (const c of shape) {
          out += c === "#" ? String(rng.int(0, 9)) : c === "?" ? LETTERS[rng.int(0, 25)] : c;
        }
        return out;
      };
    }
    case "range": {
      const m = arg === undefined ? null : /^(-?\d{1,15})-(-?\d{1,15})$/.exec(arg);
      if (!m) fail("${range:MIN-MAX} needs two integers, e.g. ${range:1-5}");
      const [min, max] = [Number(m[1]), Number(m[2])];
      if (min > max) fail(`\${range:${arg}} has MIN greater than MAX`);
      return (rng) => String(rng.int(min, max));
    }
    case "choice": {
      const options = arg === undefined ? [] : arg.split(",");
      if (options.length === 0 || options.some((o) => o === "")) {
        fail("${choice:a,b,c} needs comma-separated options, none of them empty");
      }
      return (rng) => rng.pick(options);
    }
    case "seq": {
      if (arg !== undefined && !/^-?\d{1,15}$/.test(arg)) {
        fail("${seq:START} needs an integer start, e.g. ${seq:1}");
      }
      let next = arg === undefined ? 1 : Number(arg);
      return () => String(next++);
    }
  }
  return fail(
    `unknown pattern \${${name}${arg === undefined ? "" : `:${arg}`}} (known: ${PATTERNS.join(", ")})`,
  );
}

/**
 * Compiles a template; throws AetherError("bad_request") naming `label`, the line and column of a bad pattern.
 * Each compiled template has its own `${seq}` counters.
 */
export function compileTemplate(text: string, label = "template"): Template {
  const parts: Part[] = [];
  let literal = "";
  let i = 0;
  while (i < text.length) {
    if (text.startsWith("$${", i)) {
      literal += "${";
      i += 3;
      continue;
    }
    if (!text.startsWith("${", i)) {
      literal += text[i++];
      continue;
    }
    const fail = (why: string): never => {
      throw new AetherError("bad_request", `${label}: ${why} at ${position(text, i)}`, { field: label });
    };
    const end = text.indexOf("}", i + 2);
    if (end < 0) fail('"${" has no closing "}"');
    const body = text.slice(i + 2, end);
    const colon = body.indexOf(":");
    const name = (colon < 0 ? body : body.slice(0, colon)).trim();
    const arg = colon < 0 ? undefined : body.slice(colon + 1);
    if (literal !== "") parts.push(literal);
    literal = "";
    parts.push(compilePattern(name, arg, fail));
    i = end + 1;
  }
  if (literal !== "") parts.push(literal);
  const isStatic = parts.every((p) => typeof p === "string");
  const fixed = isStatic ? parts.join("") : "";
  return {
    source: text,
    isStatic,
    expand(rng: Rng): string {
      if (isStatic) return fixed;
      let out = "";
      for (const part of parts) out += typeof part === "string" ? part : part(rng);
      return out;
    },
  };
}
