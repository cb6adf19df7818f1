/**
 * A node's log file under `.forge/logs/`, rotated by size: when `n1.log` would grow past `maxBytes` it becomes
 * `n1.log.1` (the older ones shift to `.2`, `.3`, ...; the oldest beyond `keep` is deleted) and a new `n1.log`
 * starts. The last few KiB stay in memory too, so a node that fails to start can be explained at once.
 */

/** Size at which a node's log file is rotated. */
export const MAX_LOG_FILE_BYTES = 10 * 1024 * 1024;
/** Rotated files kept per node (`n1.log.1` .. `n1.log.3`). */
export const KEPT_LOG_FILES = 3;
/** Characters of the latest log output kept in memory for error messages. */
export const LOG_TAIL_CHARS = 4 * 1024;

export class RotatingLogFile {
  #file: Deno.FsFile;
  #bytes: number;
  #tail = "";
  readonly #encoder = new TextEncoder();

  constructor(
    readonly path: string,
    readonly maxBytes = MAX_LOG_FILE_BYTES,
    readonly keep = KEPT_LOG_FILES,
  ) {
    this.#file = Deno.openSync(path, { create: true, append: true });
    this.#bytes = this.#file.statSync().size;
  }

  write(text: string): void {
    this.#tail = (this.#tail + text).slice(-LOG_TAIL_CHARS);
    const bytes = this.#encoder.encode(text);
    if (this.#bytes > 0 && this.#bytes + bytes.length > this.maxBytes) this.#rotate();
    let written = 0;
    while (written < bytes.length) written += this.#file.writeSync(bytes.subarray(written));
    this.#bytes += bytes.length;
  }

  /** The last lines written, for a message about why a node stopped. */
  tail(lines = 15): string {
    return this.#tail.trimEnd().split("\n").slice(-lines).join("\n");
  }

  close(): void {
    try {
      this.#file.close();
    } catch {
      // Already closed.
    }
  }

  #rotate(): void {
    this.#file.close();
    removeIfPresent(`${this.path}.${this.keep}`);
    for (let i = this.keep - 1; i >= 1; i--) renameIfPresent(`${this.path}.${i}`, `${this.path}.${i + 1}`);
    if (this.keep > 0) renameIfPresent(this.path, `${this.path}.1`);
    else removeIfPresent(this.path);
    this.#file = Deno.openSync(this.path, { create: true, write: true, truncate: true });
    this.#bytes = 0;
  }
}

function renameIfPresent(from: string, to: string): void {
  try {
    Deno.renameSync(from, to);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

function removeIfPresent(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
