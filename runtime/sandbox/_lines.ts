/**
 * Newline-delimited JSON framing of the process sandbox's stdio channel, shared by the host
 * (`_process_channel.ts`) and the child (`_child_main.ts`). JSON text never contains a raw newline, so a
 * newline ends a message. No imports: the child loads this before anything else.
 */

/** The largest message either side accepts (a call's result, a log line); more ends the channel. */
export const MAX_MESSAGE_CHARS = 64 * 1024 * 1024;

/**
 * Splits a stream of UTF-8 bytes into lines. One decode per chunk however many lines it holds; an unfinished
 * line is kept as a rope and only the new text is searched, so a message spread over many chunks costs
 * linear time, not quadratic.
 */
export class LineSplitter {
  readonly #decoder = new TextDecoder();
  #rest = "";

  /**
   * Calls `line` for every complete non-empty line in order. Returns false when the unfinished line has
   * passed `maxChars` (it is dropped; the caller ends the channel).
   */
  push(chunk: Uint8Array, line: (text: string) => void, maxChars = MAX_MESSAGE_CHARS): boolean {
    const text = this.#decoder.decode(chunk, { stream: true });
    let newline = text.indexOf("\n");
    if (newline < 0) {
      this.#rest += text;
      if (this.#rest.length <= maxChars) return true;
      this.#rest = "";
      return false;
    }
    const first = this.#rest + text.slice(0, newline);
    this.#rest = "";
    if (first !== "") line(first);
    let start = newline + 1;
    while ((newline = text.indexOf("\n", start)) >= 0) {
      if (newline > start) line(text.slice(start, newline));
      start = newline + 1;
    }
    if (start < text.length) this.#rest = text.slice(start);
    return this.#rest.length <= maxChars || ((this.#rest = ""), false);
  }
}
