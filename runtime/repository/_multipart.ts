/**
 * A small multipart/form-data reader (RFC 7578) for artifact uploads: the named parts as byte views into the
 * request body, without copies.
 *
 * Why not `Request.formData()`: measured on this machine, Deno's parser takes about 20 ms for a 1 MiB upload,
 * which was most of a 1 MiB push's time on the node that receives it; finding the boundaries with
 * `Uint8Array.indexOf` takes well under 1 ms. Only what uploads need is supported: parts with a
 * `Content-Disposition: form-data; name="..."` header and raw content (no nested multipart, no
 * Content-Transfer-Encoding, which RFC 7578 deprecates).
 */

const CR = 0x0d;
const ascii = new TextEncoder();
const headerText = new TextDecoder();

/** The first index of `needle` in `haystack` at or after `from`, or -1. */
function indexOfBytes(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  const first = needle[0];
  const last = haystack.length - needle.length;
  for (let i = haystack.indexOf(first, from); i >= 0 && i <= last; i = haystack.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

/** The boundary named by a `multipart/form-data` content type, or undefined. */
export function boundaryOf(contentType: string): string | undefined {
  if (!/^\s*multipart\/form-data\s*;/i.test(contentType)) return undefined;
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))/i.exec(contentType);
  return match?.[1] ?? match?.[2];
}

/**
 * The parts of a multipart/form-data body by name, as views into `body`. Returns a sentence saying what is
 * wrong when the body is not well-formed multipart or names a part twice.
 */
export function parseMultipart(body: Uint8Array, boundary: string): Map<string, Uint8Array> | string {
  const delimiter = ascii.encode(`--${boundary}`);
  const separator = ascii.encode(`\r\n--${boundary}`);
  const headerEnd = ascii.encode("\r\n\r\n");
  const parts = new Map<string, Uint8Array>();
  let pos = indexOfBytes(body, delimiter, 0);
  if (pos < 0) return `no "--${boundary}" delimiter in the body`;
  pos += delimiter.length;
  for (let index = 0;; index++) {
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts; // "--": the close delimiter
    const lineEnd = body.indexOf(CR, pos);
    if (lineEnd < 0 || body[lineEnd + 1] !== 0x0a) return `part ${index}: the delimiter line does not end`;
    const headersStart = lineEnd + 2;
    const headersEnd = indexOfBytes(body, headerEnd, headersStart);
    if (headersEnd < 0) return `part ${index}: its headers do not end with an empty line`;
    const headers = headerText.decode(body.subarray(headersStart, headersEnd));
    const contentStart = headersEnd + headerEnd.length;
    const next = indexOfBytes(body, separator, contentStart);
    if (next < 0) return `part ${index}: no closing "--${boundary}" delimiter`;
    const disposition = /^content-disposition:\s*form-data\s*;(.*)$/im.exec(headers);
    const name = disposition && /(?:^|;)\s*name="([^"]*)"/i.exec(disposition[1])?.[1];
    if (!name) return `part ${index} has no Content-Disposition: form-data; name="..." header`;
    if (parts.has(name)) return `part "${name}" appears twice`;
    parts.set(name, body.subarray(contentStart, next));
    pos = next + separator.length;
  }
}
