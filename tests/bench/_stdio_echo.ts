/**
 * A child Deno process that answers every JSON line on its standard input with the same message, parsed and
 * serialized again: the floor under a process-isolation call (a stdio hop each way plus JSON), used as a
 * baseline by sandbox_bench.ts and invoke_bench.ts. Ends when its standard input closes.
 */

const SOURCE = `
  const enc = new TextEncoder(); const dec = new TextDecoder(); let buf = "";
  for await (const chunk of Deno.stdin.readable) {
    buf += dec.decode(chunk, { stream: true });
    let i, out = "";
    while ((i = buf.indexOf("\\n")) >= 0) { const line = buf.slice(0, i); buf = buf.slice(i + 1);
      out += JSON.stringify(JSON.parse(line)) + "\\n"; }
    if (out) { const b = enc.encode(out); let o = 0; while (o < b.length) o += Deno.stdout.writeSync(b.subarray(o)); }
  }`;

export function spawnStdioEcho(): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", SOURCE],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}
