import { deepStrictEqual, equal } from "node:assert/strict";
import { boundaryOf, parseMultipart } from "./_multipart.ts";

/** Encodes a FormData the way fetch sends it (Deno's own encoder), for the parser to read back. */
async function encoded(form: FormData): Promise<{ body: Uint8Array; boundary: string }> {
  const response = new Response(form);
  const boundary = boundaryOf(response.headers.get("content-type")!);
  equal(typeof boundary, "string");
  return { body: new Uint8Array(await response.arrayBuffer()), boundary: boundary! };
}

const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);

Deno.test("multipart: the parts fetch encodes come back byte for byte, binary and tricky content included", async () => {
  const tricky = new Uint8Array([13, 10, 45, 45, 13, 10, 13, 10, 0, 255, 45, 45, 13]);
  const big = new Uint8Array(1024 * 1024 + 3).map((_, i) => (i * 7) % 256);
  const form = new FormData();
  form.set("manifest", JSON.stringify({ coordinates: "g:a:1.0.0", note: "--\r\n\r\n" }));
  form.set("bundle", new Blob([big]), "bundle.js");
  form.set("tricky", new Blob([tricky]), "t.bin");
  form.set("empty", new Blob([]), "e");
  const { body, boundary } = await encoded(form);
  const parts = parseMultipart(body, boundary);
  if (typeof parts === "string") throw new Error(parts);
  deepStrictEqual([...parts.keys()], ["manifest", "bundle", "tricky", "empty"]);
  equal(text(parts.get("manifest")), JSON.stringify({ coordinates: "g:a:1.0.0", note: "--\r\n\r\n" }));
  deepStrictEqual(parts.get("bundle"), big);
  deepStrictEqual(parts.get("tricky"), tricky);
  deepStrictEqual(parts.get("empty"), new Uint8Array());
});

Deno.test("multipart: a hand-written body with a quoted boundary and a preamble parses", () => {
  const contentType = 'multipart/form-data; boundary="XyZ"';
  const boundary = boundaryOf(contentType)!;
  equal(boundary, "XyZ");
  const body = new TextEncoder().encode(
    'preamble\r\n--XyZ\r\nContent-Disposition: form-data; filename="m.json"; name="manifest"\r\n' +
      "Content-Type: application/json\r\n\r\n{}\r\n--XyZ--\r\nepilogue",
  );
  const parts = parseMultipart(body, boundary);
  if (typeof parts === "string") throw new Error(parts);
  deepStrictEqual([...parts.keys()], ["manifest"]);
  equal(text(parts.get("manifest")), "{}");
});

Deno.test("multipart: malformed bodies and content types are reported, not guessed at", () => {
  equal(boundaryOf("application/json"), undefined);
  equal(boundaryOf("multipart/form-data"), undefined);
  equal(boundaryOf("multipart/mixed; boundary=x"), undefined);
  const parse = (body: string) => parseMultipart(new TextEncoder().encode(body), "B");
  equal(parse("nothing here"), 'no "--B" delimiter in the body');
  equal(
    parse('--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nunterminated'),
    'part 0: no closing "--B" delimiter',
  );
  equal(
    parse('--B\r\nContent-Disposition: form-data; name="a"\r\nno blank line'),
    "part 0: its headers do not end with an empty line",
  );
  equal(
    parse("--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--"),
    'part 0 has no Content-Disposition: form-data; name="..." header',
  );
  equal(
    parse(
      '--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n2\r\n--B--',
    ),
    'part "a" appears twice',
  );
  equal(parse("--B"), "part 0: the delimiter line does not end");
});
