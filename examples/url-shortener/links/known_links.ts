/**
 * The links one instance of the links slice has seen, in its own memory (a near cache in front of the `cache`
 * service and the kv). Exact, never stale: a link is written once (`shorten` puts it "only if absent") and
 * never changed or deleted by this slice, so a code's URL, once read, is its URL for good. Should a later
 * version edit or delete links, this must go or be invalidated. Bounded: the least recently used leave first.
 */

/** Links one instance keeps (URLs are at most 2 KiB: about 20 MiB at most). */
export const MAX_KNOWN_LINKS = 10_000;

export class KnownLinks {
  readonly #urls = new Map<string, string>();

  constructor(readonly maxLinks = MAX_KNOWN_LINKS) {}

  get size(): number {
    return this.#urls.size;
  }

  /** The code's URL if this instance knows it (now the most recently used). */
  get(code: string): string | undefined {
    const url = this.#urls.get(code);
    if (url !== undefined) {
      this.#urls.delete(code);
      this.#urls.set(code, url);
    }
    return url;
  }

  remember(code: string, url: string): void {
    this.#urls.delete(code);
    this.#urls.set(code, url);
    while (this.#urls.size > this.maxLinks) this.#urls.delete(this.#urls.keys().next().value!);
  }
}
