import { equal, ok } from "node:assert/strict";
import { printable, table } from "./_format.ts";

Deno.test("keys print safely: control characters, ANSI escapes and line separators are escaped", () => {
  const key = "app/a\u0000b\r\nFAKE  1  x\u001b[31mred\u007f\u0085\u2028";
  const shown = printable(key);
  equal(shown, "app/a\\u{00}b\\u{0d}\\u{0a}FAKE  1  x\\u{1b}[31mred\\u{7f}\\u{85}\\u{2028}");
  // The table stays one line per key, with no raw control character on any line.
  const lines = table(["KEY", "REVISION"], [[printable(key), 3], ["app/plain", 4]]).split("\n");
  equal(lines.length, 3);
  // deno-lint-ignore no-control-regex -- what must not reach the terminal
  for (const line of lines) ok(!/[\u0000-\u001f\u007f-\u009f\u2028]/.test(line), line);
  equal(printable("app/été ✓"), "app/été ✓");
});
