import { equal } from "node:assert/strict";

/** A real child process that waits for `stopRequested()` and prints its reason. */
async function waitingChild(stdin: "piped" | "null") {
  const stop = new URL("./stop.ts", import.meta.url).href;
  const script = `import { stopRequested } from ${JSON.stringify(stop)};
const stop = stopRequested();
console.log("ready");
console.log(await stop);
Deno.exit(0);`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", script],
    stdin,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("ready\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the child ended before it was ready: ${text}`);
    text += value;
  }
  /** What the child printed after "ready", once it exits. */
  const rest = async () => {
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;
    return text.slice(text.indexOf("ready\n") + 6).trim();
  };
  return { child, rest };
}

Deno.test("stopRequested: a parent closing the piped standard input asks the child to stop", async () => {
  const { child, rest } = await waitingChild("piped");
  await child.stdin.close();
  equal(await rest(), "standard input closed");
  equal((await child.status).code, 0);
});

Deno.test("stopRequested: SIGTERM asks to stop; standard input that is not a pipe is not watched", async () => {
  const { child, rest } = await waitingChild("null");
  child.kill("SIGTERM");
  equal(await rest(), "SIGTERM");
  equal((await child.status).code, 0);
});
