// `--outbound-allow`: absent means no host, entries are kept canonical, a bad entry is refused naming the
// flag.

import assert from "node:assert/strict";
import { parseNodeFlags } from "./flags.ts";

const REQUIRED = [
  ...["--id", "n1", "--peers", "n1@127.0.0.1:7101"],
  ...["--data-dir", "/tmp/x", "--secret-file", "/tmp/s"],
];

Deno.test("--outbound-allow: none by default, canonical entries, bad ones named", () => {
  assert.equal(parseNodeFlags(REQUIRED).outboundAllow, undefined);
  assert.deepEqual(
    parseNodeFlags([...REQUIRED, "--outbound-allow", "Api.Example.COM., 0x7f.1:9000,[0::1]:8443,*"])
      .outboundAllow,
    ["api.example.com", "127.0.0.1:9000", "[::1]:8443", "*"],
  );
  assert.throws(
    () => parseNodeFlags([...REQUIRED, "--outbound-allow", "ok.example,bad host"]),
    /--outbound-allow\[1\]: "bad host" is not "host" or "host:port"/,
  );
  assert.throws(
    () => parseNodeFlags([...REQUIRED, "--outbound-allow", "h:0"]),
    /--outbound-allow\[0\]: port 0/,
  );
});
