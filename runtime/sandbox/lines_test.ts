import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { LineSplitter } from "./_lines.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function split(chunks: Uint8Array[], maxChars?: number): { lines: string[]; ok: boolean[] } {
  const splitter = new LineSplitter();
  const lines: string[] = [];
  const ok = chunks.map((chunk) => splitter.push(chunk, (line) => lines.push(line), maxChars));
  return { lines, ok };
}

Deno.test("lines: several per chunk, one over several chunks, empty lines skipped", () => {
  const { lines } = split([
    bytes('{"a":1}\n{"b"'),
    bytes(":2}\n\n"),
    bytes('{"c":'),
    bytes("3}"),
    bytes("\n"),
  ]);
  assertEquals(lines, ['{"a":1}', '{"b":2}', '{"c":3}']);
});

Deno.test("lines: a multi-byte character split between two chunks is decoded whole", () => {
  const all = bytes('{"name":"Müller ✓"}\n');
  const cut = all.indexOf(0x9c) - 1; // inside the three bytes of ✓
  const { lines } = split([all.subarray(0, cut), all.subarray(cut)]);
  assertEquals(lines.map((l) => JSON.parse(l)), [{ name: "Müller ✓" }]);
});

Deno.test("lines: an unfinished line past the limit is refused and dropped; the next line is read", () => {
  const { lines, ok } = split([bytes("x".repeat(20)), bytes("y".repeat(20)), bytes("\nshort\n")], 32);
  assertEquals(ok, [true, false, true]);
  assertEquals(lines, ["short"]);
});
