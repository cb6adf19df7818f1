/**
 * A mesh member in a child process (tests/_support/mesh_member.ts) that dies, freezes and comes back: the
 * member in this process must notice within about a second and reconnect when it returns.
 */

import assert from "node:assert/strict";
import { Mesh } from "./mesh.ts";
import { hex, openSocketCount, recordingLogger, SECRET, waitFor } from "./_testing.ts";
import { DIALER_ENV_VARS } from "./_dialer.ts";
import { type DenoChild, spawnDenoChild } from "../../tests/_support/child.ts";

const options = { sanitizeOps: true, sanitizeResources: true };
const root = new URL("../../", import.meta.url).pathname;
const memberScript = new URL("../../tests/_support/mesh_member.ts", import.meta.url).pathname;

function spawnMember(id: string, peers: string): DenoChild {
  return spawnDenoChild(
    [
      "run",
      "--allow-net=127.0.0.1",
      `--allow-env=${DIALER_ENV_VARS.join(",")}`,
      memberScript,
      "--id",
      id,
      "--peers",
      peers,
      "--secret-hex",
      hex(SECRET),
    ],
    { cwd: root },
  );
}

async function readyPort(child: DenoChild): Promise<number> {
  const ready = await child.waitForLine((line) => line.event === "ready", 20_000);
  return ready.clusterPort as number;
}

/** This process's member, with a log of peer events and their times. */
async function localMember(self: string, peers: { id: string; port: number }[]) {
  const mesh = new Mesh({
    self,
    peers: peers.map((p) => ({ id: p.id, host: "127.0.0.1", port: p.port })),
    secret: SECRET,
    logger: recordingLogger().logger,
  });
  const events: { at: number; what: string }[] = [];
  mesh.onPeerUp((id) => events.push({ at: performance.now(), what: `up ${id}` }));
  mesh.onPeerDown((id, reason) => events.push({ at: performance.now(), what: `down ${id}: ${reason}` }));
  const echoes: unknown[] = [];
  mesh.onMessage("echo", (_from, message) => echoes.push(message));
  await mesh.start();
  return { mesh, events, echoes };
}

async function assertEcho(
  local: { mesh: Mesh; echoes: unknown[] },
  peer: string,
  tag: string,
): Promise<void> {
  const message = { tag, value: new Uint8Array([1, 2, 3]) };
  assert.equal(local.mesh.send(peer, "echo", message), true);
  await waitFor(() => local.echoes.some((e) => (e as { tag: string }).tag === tag), `echo ${tag}`);
  assert.deepEqual(local.echoes.find((e) => (e as { tag: string }).tag === tag), message);
}

/** After stop(): the process holds no more sockets than before the mesh started (skipped without /proc). */
function assertSocketsReleased(before: number | undefined): void {
  const after = openSocketCount();
  if (before === undefined || after === undefined) return;
  assert.equal(after, before, `${after - before} socket(s) still open after stop()`);
}

function downAfter(
  events: { at: number; what: string }[],
  since: number,
): { at: number; what: string } | undefined {
  return events.find((e) => e.at >= since && e.what.startsWith("down"));
}

Deno.test("a SIGKILLed member is reported down at once and up again after its restart", options, async () => {
  const socketsBefore = openSocketCount();
  const local = await localMember("n1", [{ id: "n1", port: 0 }, { id: "n2", port: 0 }]);
  const peers = `n1@127.0.0.1:${local.mesh.port},n2@127.0.0.1:0`;
  let child = spawnMember("n2", peers);
  try {
    local.mesh.setPeerAddress("n2", "127.0.0.1", await readyPort(child));
    await waitFor(() => local.mesh.isConnected("n2"), "n2 up");
    await assertEcho(local, "n2", "before");

    const killedAt = performance.now();
    child.kill("SIGKILL");
    await waitFor(() => downAfter(local.events, killedAt) !== undefined, "n2 down", 5000);
    const detectedMs = downAfter(local.events, killedAt)!.at - killedAt;
    console.log(`SIGKILL detected after ${detectedMs.toFixed(0)} ms`);
    assert.ok(detectedMs < 1500, `detected after ${detectedMs} ms`);
    assert.equal(local.mesh.send("n2", "echo", { tag: "lost" }), false);
    await child.stop();

    child = spawnMember("n2", peers);
    const restartedAt = performance.now();
    local.mesh.setPeerAddress("n2", "127.0.0.1", await readyPort(child));
    await waitFor(() => local.mesh.isConnected("n2"), "n2 up after restart");
    console.log(`up again ${(performance.now() - restartedAt).toFixed(0)} ms after the restart was ready`);
    await assertEcho(local, "n2", "after");
    assert.deepEqual(local.events.map((e) => e.what.split(":")[0]), ["up n2", "down n2", "up n2"]);
  } finally {
    await child.stop();
    await local.mesh.stop();
  }
  assertSocketsReleased(socketsBefore);
});

Deno.test(
  "a SIGSTOPped member is declared down by heartbeat within about a second, up after SIGCONT",
  options,
  async () => {
    const socketsBefore = openSocketCount();
    const local = await localMember("n1", [{ id: "n1", port: 0 }, { id: "n2", port: 0 }]);
    const child = spawnMember("n2", `n1@127.0.0.1:${local.mesh.port},n2@127.0.0.1:0`);
    try {
      local.mesh.setPeerAddress("n2", "127.0.0.1", await readyPort(child));
      await waitFor(() => local.mesh.isConnected("n2"), "n2 up");
      await assertEcho(local, "n2", "before");

      const stoppedAt = performance.now();
      child.kill("SIGSTOP");
      await waitFor(() => downAfter(local.events, stoppedAt) !== undefined, "n2 down", 5000);
      const down = downAfter(local.events, stoppedAt)!;
      const detectedMs = down.at - stoppedAt;
      console.log(`SIGSTOP detected after ${detectedMs.toFixed(0)} ms`);
      assert.match(down.what, /no frame for \d+ ms/);
      assert.ok(detectedMs >= 600 && detectedMs <= 1500, `detected after ${detectedMs} ms`);

      // Stay frozen through a few failed re-dials, then resume.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(local.mesh.isConnected("n2"), false);
      const resumedAt = performance.now();
      child.kill("SIGCONT");
      await waitFor(() => local.mesh.isConnected("n2"), "n2 up after SIGCONT", 10_000);
      console.log(`up again ${(performance.now() - resumedAt).toFixed(0)} ms after SIGCONT`);
      await assertEcho(local, "n2", "after");
      await child.waitForLine((line) =>
        line.event === "peerUp" && child.lines.filter((l) => l.event === "peerUp").length >= 2
      );
    } finally {
      await child.stop();
      await local.mesh.stop();
    }
    assertSocketsReleased(socketsBefore);
  },
);

Deno.test(
  "stop() drops the connection to a frozen member without waiting closeTimeoutMs, and releases every socket",
  options,
  async () => {
    const socketsBefore = openSocketCount();
    const local = await localMember("n1", [{ id: "n1", port: 0 }, { id: "n2", port: 0 }]);
    const child = spawnMember("n2", `n1@127.0.0.1:${local.mesh.port},n2@127.0.0.1:0`);
    try {
      local.mesh.setPeerAddress("n2", "127.0.0.1", await readyPort(child));
      await waitFor(() => local.mesh.isConnected("n2"), "n2 up");
      await assertEcho(local, "n2", "before");
      // Frozen, and stop() comes before the heartbeat notices: the closing handshake can get no answer.
      child.kill("SIGSTOP");
      const stoppingAt = performance.now();
      await local.mesh.stop(); // closeTimeoutMs is the default 2000 ms, heartbeatMs 200 ms
      const stopMs = performance.now() - stoppingAt;
      console.log(`stop() with a frozen peer took ${stopMs.toFixed(0)} ms`);
      assert.ok(stopMs < 1000, `stop() took ${stopMs} ms`);
      assert.deepEqual(local.events.map((e) => e.what), ["up n2", "down n2: mesh stopping"]);
    } finally {
      await child.stop();
      await local.mesh.stop();
    }
    assertSocketsReleased(socketsBefore);
  },
);

Deno.test(
  "an acceptor notices a killed dialer, and the restarted dialer connects again",
  options,
  async () => {
    // Here the child has the lower id, so it dials this process.
    const socketsBefore = openSocketCount();
    const local = await localMember("n2", [{ id: "n1", port: 0 }, { id: "n2", port: 0 }]);
    const peers = `n1@127.0.0.1:0,n2@127.0.0.1:${local.mesh.port}`;
    let child = spawnMember("n1", peers);
    try {
      await readyPort(child);
      await waitFor(() => local.mesh.isConnected("n1"), "n1 up");
      await assertEcho(local, "n1", "before");
      const killedAt = performance.now();
      child.kill("SIGKILL");
      await waitFor(() => downAfter(local.events, killedAt) !== undefined, "n1 down", 5000);
      assert.ok(downAfter(local.events, killedAt)!.at - killedAt < 1500);
      await child.stop();
      child = spawnMember("n1", peers);
      await readyPort(child);
      await waitFor(() => local.mesh.isConnected("n1"), "n1 up after restart");
      await assertEcho(local, "n1", "after");
    } finally {
      await child.stop();
      await local.mesh.stop();
    }
    assertSocketsReleased(socketsBefore);
  },
);
