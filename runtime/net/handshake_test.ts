/**
 * Authentication of mesh connections against real sockets: raw clients that speak the handshake by hand (with
 * the right secret, a wrong one, a replayed message, an unknown id) and a fake acceptor without the secret.
 */

import assert from "node:assert/strict";
import { Mesh, type MeshConfig } from "./mesh.ts";
import {
  authMessage,
  hex,
  RawClient,
  recordingLogger,
  SECRET,
  transcriptMac,
  waitFor,
  WRONG_SECRET,
} from "./_testing.ts";

const options = { sanitizeOps: true, sanitizeResources: true };

async function startAcceptor(extra: Partial<MeshConfig> = {}) {
  const { logger, records } = recordingLogger();
  const mesh = new Mesh({
    self: "n2",
    peers: [
      { id: "n1", host: "127.0.0.1", port: 0 },
      { id: "n2", host: "127.0.0.1", port: 0 },
      { id: "n3", host: "127.0.0.1", port: 0 },
    ],
    secret: SECRET,
    logger,
    ...extra,
  });
  const ups: string[] = [];
  mesh.onPeerUp((id) => ups.push(id));
  mesh.onMessage("x", () => {});
  await mesh.start();
  return { mesh, records, ups };
}

function refusals(records: { message: string; fields: Record<string, unknown> }[]) {
  return records.filter((r) => r.message === "mesh refused a connection");
}

/** The challenge is the only thing a client without the secret may ever see. */
function assertOnlyChallenge(client: RawClient): void {
  assert.equal(
    client.received.length,
    1,
    `expected only the challenge, got ${client.received.length} frames`,
  );
  const challenge = client.received[0];
  assert.equal(typeof challenge, "string");
  const parsed = JSON.parse(challenge as string);
  assert.deepEqual(Object.keys(parsed).sort(), ["nonce", "t", "v"]);
  assert.equal(parsed.t, "challenge");
  assert.match(parsed.nonce, /^[0-9a-f]{64}$/);
}

Deno.test(
  "a client with the wrong secret gets the challenge, then a close, and is logged",
  options,
  async () => {
    const { mesh, records, ups } = await startAcceptor();
    const client = new RawClient(mesh.port);
    try {
      await client.receivedAtLeast(1);
      client.send(await authMessage(client, { id: "n1", to: "n2", secret: WRONG_SECRET }));
      await client.closed;
      assertOnlyChallenge(client);
      assert.equal(client.closeCode, 1008);
      assert.equal(mesh.isConnected("n1"), false);
      assert.deepEqual(ups, []);
      const [refusal] = refusals(records);
      assert.equal(refusal.fields.claimedId, "n1");
      assert.match(String(refusal.fields.remote), /^127\.0\.0\.1:\d+$/);
      assert.match(String(refusal.fields.reason), /wrong MAC/);
      assert.equal(mesh.stats().refusedHandshakes, 1);
    } finally {
      await client.close();
      await mesh.stop();
    }
  },
);

Deno.test(
  "a client with the secret is accepted, and a replay of its handshake is refused",
  options,
  async () => {
    const { mesh, records, ups } = await startAcceptor();
    const honest = new RawClient(mesh.port);
    const replayer = new RawClient(mesh.port);
    try {
      await honest.receivedAtLeast(1);
      const auth = await authMessage(honest, { id: "n1", to: "n2", secret: SECRET });
      honest.send(auth);
      await honest.receivedAtLeast(2);
      const accept = JSON.parse(honest.received[1] as string);
      assert.equal(accept.t, "accept");
      // The acceptor proves the secret too: its MAC matches the transcript computed here.
      const expected = await transcriptMac(SECRET, "acceptor", {
        cluster: "aether",
        dialer: "n1",
        acceptor: "n2",
        acceptorNonce: honest.challengeNonce(),
        dialerNonce: JSON.parse(auth).nonce,
      });
      assert.equal(accept.mac, expected);
      await waitFor(() => mesh.isConnected("n1"), "n1 to be up");
      assert.deepEqual(ups, ["n1"]);
      assert.equal(mesh.send("n1", "x", { hello: "n1" }), true);
      await waitFor(
        () => honest.received.some((f) => f instanceof Uint8Array && f[0] === 0x01),
        "a data frame",
      );

      // Replay the honest client's auth on a new connection: the acceptor's nonce is new, so the MAC fails.
      await replayer.receivedAtLeast(1);
      assert.notEqual(replayer.challengeNonce(), honest.challengeNonce());
      replayer.send(auth);
      await replayer.closed;
      assertOnlyChallenge(replayer);
      const [refusal] = refusals(records);
      assert.match(String(refusal.fields.reason), /wrong MAC/);
      assert.equal(mesh.isConnected("n1"), true, "a failed handshake must not disturb the live connection");
      assert.deepEqual(ups, ["n1"]);
    } finally {
      await honest.close();
      await replayer.close();
      await mesh.stop();
    }
  },
);

Deno.test("unknown ids, wrong direction, wrong target and protocol errors are refused", options, async () => {
  const { mesh, records, ups } = await startAcceptor({ handshakeTimeoutMs: 300 });
  const cases: { name: string; act: (c: RawClient) => Promise<void>; reason: RegExp; claimedId?: string }[] =
    [
      {
        name: "unknown id with a valid MAC",
        act: async (c) => c.send(await authMessage(c, { id: "zz", to: "n2", secret: SECRET })),
        reason: /unknown node id/,
        claimedId: "zz",
      },
      {
        name: "higher id dialing a lower one",
        act: async (c) => c.send(await authMessage(c, { id: "n3", to: "n2", secret: SECRET })),
        reason: /lower id dials/,
        claimedId: "n3",
      },
      {
        name: "addressed to another member",
        act: async (c) => c.send(await authMessage(c, { id: "n1", to: "n3", secret: SECRET })),
        reason: /addressed to "n3"/,
        claimedId: "n1",
      },
      {
        name: "another cluster's name",
        act: async (c) =>
          c.send(await authMessage(c, { id: "n1", to: "n2", secret: SECRET, cluster: "other" })),
        reason: /wrong MAC/,
        claimedId: "n1",
      },
      {
        name: "binary before auth",
        act: (c) => Promise.resolve(c.send(new Uint8Array([1, 1, 0]))),
        reason: /text frame/,
      },
      { name: "not JSON", act: (c) => Promise.resolve(c.send("hello?")), reason: /not JSON/ },
      { name: "silence", act: () => Promise.resolve(), reason: /no valid auth within 300 ms/ },
    ];
  try {
    for (const [i, test] of cases.entries()) {
      const client = new RawClient(mesh.port);
      try {
        await client.receivedAtLeast(1);
        await test.act(client);
        await client.closed;
        assertOnlyChallenge(client);
        const refusal = refusals(records)[i];
        assert.ok(refusal, `${test.name}: no refusal logged`);
        assert.match(String(refusal.fields.reason), test.reason, test.name);
        assert.equal(refusal.fields.claimedId, test.claimedId, test.name);
      } finally {
        await client.close();
      }
    }
    assert.deepEqual(ups, []);
    assert.equal(mesh.stats().refusedHandshakes, cases.length);
  } finally {
    await mesh.stop();
  }
});

Deno.test(
  "a dialer refuses an acceptor that cannot prove the secret and sends it no application data",
  options,
  async () => {
    // A fake n2 that issues challenges and answers every auth with a made-up MAC.
    const received: { connection: number; frame: string | number }[] = [];
    let connections = 0;
    const fake = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      const connection = ++connections;
      socket.onopen = () =>
        socket.send(
          JSON.stringify({ t: "challenge", v: 1, nonce: hex(crypto.getRandomValues(new Uint8Array(32))) }),
        );
      socket.onmessage = (event) => {
        received.push({
          connection,
          frame: typeof event.data === "string" ? event.data : event.data.byteLength,
        });
        if (typeof event.data === "string") {
          socket.send(JSON.stringify({ t: "accept", mac: hex(crypto.getRandomValues(new Uint8Array(32))) }));
        }
      };
      return response;
    });
    const { logger, records } = recordingLogger();
    const mesh = new Mesh({
      self: "n1",
      peers: [{ id: "n1", host: "127.0.0.1", port: 0 }, {
        id: "n2",
        host: "127.0.0.1",
        port: fake.addr.port,
      }],
      secret: SECRET,
      logger,
      reconnectMinMs: 20,
      reconnectMaxMs: 50,
    });
    const ups: string[] = [];
    mesh.onPeerUp((id) => ups.push(id));
    try {
      await mesh.start();
      const sent: boolean[] = [];
      await waitFor(() => {
        sent.push(mesh.send("n2", "c", { secret: "state" }));
        return connections >= 3;
      }, "three dial attempts");
      assert.deepEqual(ups, []);
      assert.ok(sent.every((s) => s === false), "send must report that nothing was queued");
      assert.ok(received.length >= 2);
      for (const { frame } of received) {
        assert.equal(typeof frame, "string", "only handshake text frames may reach an unproven acceptor");
        assert.equal(JSON.parse(frame as string).t, "auth");
      }
      assert.ok(records.some((r) => r.message === "mesh peer failed to prove the cluster secret; closing"));
    } finally {
      await mesh.stop();
      await fake.shutdown();
    }
  },
);

Deno.test("members with different secrets never connect; the same secret connects", options, async () => {
  const peers = [{ id: "a", host: "127.0.0.1", port: 0 }, { id: "b", host: "127.0.0.1", port: 0 }];
  const b = new Mesh({ self: "b", peers, secret: SECRET, logger: recordingLogger().logger });
  const { logger, records } = recordingLogger();
  const bad = new Mesh({
    self: "a",
    peers,
    secret: WRONG_SECRET,
    logger,
    reconnectMinMs: 20,
    reconnectMaxMs: 40,
  });
  const good = new Mesh({ self: "a", peers, secret: SECRET, logger: recordingLogger().logger });
  try {
    await b.start();
    await bad.start();
    bad.setPeerAddress("b", "127.0.0.1", b.port);
    await waitFor(() => b.stats().refusedHandshakes >= 2, "two refusals");
    assert.equal(b.isConnected("a"), false);
    assert.equal(bad.isConnected("b"), false);
    assert.ok(
      records.some((r) =>
        /closed the connection during the handshake \(1008\)/.test(String(r.fields.reason))
      ),
    );
    await bad.stop();
    await good.start();
    good.setPeerAddress("b", "127.0.0.1", b.port);
    await waitFor(() => b.isConnected("a") && good.isConnected("b"), "the right secret to connect");
  } finally {
    await bad.stop();
    await good.stop();
    await b.stop();
  }
});
