import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { rateLimitClients } from "./_ratelimit.ts";

/** The client with a `send` that grants every call and records what reached it. */
function clients() {
  const sent: unknown[] = [];
  const client = rateLimitClients((service, method, payload) => {
    sent.push({ service, method, payload });
    return Promise.resolve(true);
  });
  return { client, sent };
}

Deno.test("rateLimit.tryAcquire: a positive integer is sent; anything else is refused naming it and its type", async () => {
  const { client, sent } = clients();
  const api = client.rateLimit("api");
  assertEquals(await api.tryAcquire(), true);
  assertEquals(await api.tryAcquire(3), true);
  assertEquals(sent, [
    { service: "ratelimit", method: "tryAcquire", payload: { name: "api", permits: 1 } },
    { service: "ratelimit", method: "tryAcquire", payload: { name: "api", permits: 3 } },
  ]);
  const refused: Array<[unknown, string]> = [
    ["3", 'got "3" (a string)'],
    [0, "got 0"],
    [1.5, "got 1.5"],
    [null, "got null"],
    [{ n: 3 }, "got a value of type object"],
  ];
  for (const [permits, shown] of refused) {
    await rejects(() => api.tryAcquire(permits as number), (e: TypeError) => {
      assertEquals(e.message, `rateLimit("api").tryAcquire(permits): a positive integer, ${shown}`);
      return true;
    });
  }
  assertEquals(sent.length, 2);
});
