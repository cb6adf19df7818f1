/**
 * The baseline of tests/bench/url_shortener_bench.ts: a bare Deno.serve answering `GET /u/r/{code}` with a 302
 * to the URL of the code, from a Map in its own memory (what one process does with no cluster, no store, no
 * sandbox). Prints `{"port":N}` once it listens; reads the links as JSON `{code: url}` from its first argument.
 */

const links = new Map<string, string>(Object.entries(JSON.parse(Deno.args[0] ?? "{}")));

Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: ({ port }) => console.log(JSON.stringify({ port })),
}, (request) => {
  const code = new URL(request.url).pathname.slice("/u/r/".length);
  const url = links.get(code);
  if (url === undefined) return new Response("no link", { status: 404 });
  return new Response(JSON.stringify({ url }), {
    status: 302,
    headers: { location: url, "content-type": "application/json" },
  });
});
