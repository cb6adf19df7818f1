/**
 * Where things are in a TOML document: smol-toml gives positions only for syntax errors, so the blueprint
 * validator uses this scanner to point semantic errors (unknown key, wrong type, duplicate artifact) at the
 * offending key or value. It runs on documents smol-toml has already accepted, so it only has to follow the
 * structure (tables, arrays of tables, dotted keys, inline tables and arrays, every string form), not check it.
 *
 * Paths are written the way the validator names fields: `id`, `slices[1].instances`, `slices[0].requires[2]`.
 */

export interface SourcePosition {
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units from the start of the line. */
  column: number;
}

export interface Located {
  /** The key (or, for an array element or table header, the element itself). */
  key: SourcePosition;
  /** The value (the same as `key` for a table header). */
  value: SourcePosition;
}

export type Segment = string | number;

export function formatPath(path: readonly Segment[]): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else out += out === "" ? segment : `.${segment}`;
  }
  return out;
}

/** Maps every key, array element and table header of `source` to its position, by path. */
export function locate(source: string): Map<string, Located> {
  return new Scanner(source).run();
}

class Scanner {
  readonly #src: string;
  #pos = 0;
  readonly #lineStarts: number[] = [0];
  readonly #found = new Map<string, Located>();
  /** Arrays of tables seen so far (by path text) and how many elements each has. */
  readonly #arrayCounts = new Map<string, number>();

  constructor(source: string) {
    this.#src = source;
    for (let i = 0; i < source.length; i++) if (source[i] === "\n") this.#lineStarts.push(i + 1);
  }

  run(): Map<string, Located> {
    let table: Segment[] = [];
    for (;;) {
      this.#skipBlank(true);
      if (this.#pos >= this.#src.length) break;
      if (this.#src[this.#pos] === "[") table = this.#header();
      else this.#keyValue(table);
    }
    return this.#found;
  }

  #position(offset: number): SourcePosition {
    let low = 0;
    let high = this.#lineStarts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >>> 1;
      if (this.#lineStarts[mid] <= offset) low = mid;
      else high = mid - 1;
    }
    return { line: low + 1, column: offset - this.#lineStarts[low] + 1 };
  }

  #record(path: Segment[], keyAt: number, valueAt: number): void {
    const name = formatPath(path);
    if (!this.#found.has(name)) {
      this.#found.set(name, { key: this.#position(keyAt), value: this.#position(valueAt) });
    }
  }

  /** Skips spaces, tabs and comments; newlines too when `newlines`. */
  #skipBlank(newlines: boolean): void {
    while (this.#pos < this.#src.length) {
      const c = this.#src[this.#pos];
      if (c === " " || c === "\t" || c === "\r" || (newlines && c === "\n")) this.#pos++;
      else if (c === "#") {
        while (this.#pos < this.#src.length && this.#src[this.#pos] !== "\n") this.#pos++;
      } else break;
    }
  }

  /** `[a.b]` or `[[a.b]]`; returns the path that following keys belong to. */
  #header(): Segment[] {
    const at = this.#pos;
    const isArray = this.#src.startsWith("[[", this.#pos);
    this.#pos += isArray ? 2 : 1;
    this.#skipBlank(false);
    const keys = this.#dottedKey().map((k) => k.name);
    this.#skipBlank(false);
    this.#pos += isArray ? 2 : 1;
    const path = this.#resolve(keys);
    if (isArray) {
      const name = formatPath(path);
      const index = this.#arrayCounts.get(name) ?? 0;
      this.#arrayCounts.set(name, index + 1);
      path.push(index);
    }
    this.#record(path, at, at);
    return path;
  }

  /** A header path, through the current (last) element of every array of tables it passes. */
  #resolve(keys: string[]): Segment[] {
    const path: Segment[] = [];
    keys.forEach((key, i) => {
      path.push(key);
      const count = i < keys.length - 1 ? this.#arrayCounts.get(formatPath(path)) : undefined;
      if (count !== undefined) path.push(count - 1);
    });
    return path;
  }

  #keyValue(table: Segment[]): void {
    const keys = this.#dottedKey();
    this.#skipBlank(false);
    this.#pos++; // '='
    this.#skipBlank(false);
    const path = [...table, ...keys.map((k) => k.name)];
    this.#value(path, keys[keys.length - 1].at);
  }

  #dottedKey(): { name: string; at: number }[] {
    const keys: { name: string; at: number }[] = [];
    for (;;) {
      this.#skipBlank(false);
      const at = this.#pos;
      const c = this.#src[this.#pos];
      let name: string;
      if (c === '"' || c === "'") name = this.#string();
      else {
        const start = this.#pos;
        while (this.#pos < this.#src.length && /[A-Za-z0-9_-]/.test(this.#src[this.#pos])) this.#pos++;
        name = this.#src.slice(start, this.#pos);
      }
      keys.push({ name, at });
      this.#skipBlank(false);
      if (this.#src[this.#pos] !== ".") return keys;
      this.#pos++;
    }
  }

  #value(path: Segment[], keyAt: number): void {
    const at = this.#pos;
    this.#record(path, keyAt, at);
    const c = this.#src[this.#pos];
    if (c === '"' || c === "'") this.#string();
    else if (c === "[") this.#array(path);
    else if (c === "{") this.#inlineTable(path);
    else {
      while (this.#pos < this.#src.length && !",]}#\n".includes(this.#src[this.#pos])) this.#pos++;
    }
  }

  #array(path: Segment[]): void {
    this.#pos++; // '['
    for (let index = 0;; index++) {
      this.#skipBlank(true);
      if (this.#src[this.#pos] === "]" || this.#pos >= this.#src.length) break;
      const at = this.#pos;
      this.#value([...path, index], at);
      this.#skipBlank(true);
      if (this.#src[this.#pos] === ",") this.#pos++;
    }
    this.#pos++; // ']'
  }

  #inlineTable(path: Segment[]): void {
    this.#pos++; // '{'
    for (;;) {
      this.#skipBlank(true);
      if (this.#src[this.#pos] === "}" || this.#pos >= this.#src.length) break;
      this.#keyValue(path);
      this.#skipBlank(true);
      if (this.#src[this.#pos] === ",") this.#pos++;
    }
    this.#pos++; // '}'
  }

  /** Any of the four string forms; returns its text (escapes are kept as written: keys rarely use them). */
  #string(): string {
    const quote = this.#src[this.#pos];
    const multi = this.#src.startsWith(quote.repeat(3), this.#pos);
    const delimiter = multi ? quote.repeat(3) : quote;
    this.#pos += delimiter.length;
    const start = this.#pos;
    while (this.#pos < this.#src.length) {
      if (quote === '"' && this.#src[this.#pos] === "\\") {
        this.#pos += 2;
        continue;
      }
      if (this.#src.startsWith(delimiter, this.#pos)) {
        // A multi-line string may end with up to two extra quotes before its delimiter.
        let end = this.#pos;
        if (multi) { while (this.#src[end + 3] === quote && end - this.#pos < 2) end++; }
        const text = this.#src.slice(start, end);
        this.#pos = end + delimiter.length;
        return text;
      }
      this.#pos++;
    }
    return this.#src.slice(start);
  }
}
