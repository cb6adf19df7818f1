/**
 * TLS (issue 15, item 6): certificates from `aether cluster init`, a 3-node cluster serving the management API
 * and the application port over HTTPS, the CLI trusting the cluster CA with --ca, and bad TLS flags refused.
 */

import assert from "node:assert/strict";
import { NodeProcess } from "../../runtime/forge/mod.ts";
import { TestCluster } from "../_support/cluster.ts";
import { CLI_TASK_PERMISSIONS, runCli } from "../_support/cli.ts";

interface TlsCluster {
  root: string;
  certs: string;
  token: string;
  nodes: NodeProcess[];
  close(): Promise<void>;
}

/** `aether cluster init` (a real CLI process) for `ids` into `dir`. */
async function clusterInit(dir: string, ids: string[]): Promise<void> {
  const run = await runCli(["cluster", "init", "--out", dir, "--nodes", ids.join(",")], {
    permissions: CLI_TASK_PERMISSIONS,
  });
  assert.equal(run.code, 0, `cluster init failed: ${run.stderr}`);
}

async function startTlsCluster(size: number): Promise<TlsCluster> {
  const cluster = await TestCluster.create(size, { argsFor: (id, root) => tlsArgs(`${root}/certs`, id) });
  const certs = `${cluster.root}/certs`;
  try {
    await clusterInit(certs, cluster.nodes.map((n) => n.id));
    await cluster.startAll();
  } catch (e) {
    await cluster.close();
    throw e;
  }
  return {
    root: cluster.root,
    certs,
    token: cluster.token,
    nodes: cluster.nodes,
    close: () => cluster.close(),
  };
}

function tlsArgs(certs: string, id: string): string[] {
  return [
    "--tls-cert",
    `${certs}/${id}.crt`,
    "--tls-key",
    `${certs}/${id}.key`,
    "--tls-ca",
    `${certs}/ca.crt`,
  ];
}

/** Runs the CLI against every node of the cluster over HTTPS, trusting the cluster CA. */
function cli(cluster: TlsCluster, args: string[], caFile = `${cluster.certs}/ca.crt`) {
  const connect = cluster.nodes.map((n) => `127.0.0.1:${n.ready!.apiPort}`).join(",");
  return runCli(["--connect", connect, "--ca", caFile, "--token", cluster.token, ...args]);
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const result = await check();
      if (result !== undefined) return result;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what} ${last}`);
}

Deno.test({
  name: "tls: a 3-node cluster over HTTPS; the CLI writes and reads KV trusting the cluster CA with --ca",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await startTlsCluster(3);
    try {
      const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(`${cluster.certs}/ca.crt`)] });
      try {
        await waitFor("a healthy cluster over HTTPS", async () => {
          const run = await cli(cluster, ["health"]);
          return run.code === 0 ? run : undefined;
        });
        const put = await cli(cluster, ["kv", "put", "app/tls-greeting", "hello over https"]);
        assert.equal(put.code, 0, put.stderr);
        for (const node of cluster.nodes) {
          const one = ["--connect", `https://127.0.0.1:${node.ready!.apiPort}`];
          const get = await runCli([
            ...one,
            "--ca",
            `${cluster.certs}/ca.crt`,
            "--token",
            cluster.token,
            "kv",
            "get",
            "app/tls-greeting",
            "--consistent",
          ]);
          assert.equal(get.code, 0, get.stderr);
          assert.match(get.stdout, /hello over https/);
          // The application port speaks HTTPS too: no route yet, so a 404 problem document over TLS.
          const app = await fetch(`https://127.0.0.1:${node.ready!.httpPort}/nothing`, { client });
          assert.equal(app.status, 404);
          await app.body?.cancel();
        }
        // Plain HTTP to an HTTPS port gets no answer it can use.
        const plain = await fetch(`http://127.0.0.1:${cluster.nodes[0].ready!.apiPort}/api/v1/health`)
          .then((r) => r.status, () => "failed");
        assert.notEqual(plain, 200);
        // Without the cluster CA the CLI refuses the node's certificate and says how to trust it.
        const untrusted = await runCli([
          "--connect",
          `https://127.0.0.1:${cluster.nodes[0].ready!.apiPort}`,
          "--token",
          cluster.token,
          "status",
        ], { env: { AETHER_CA: "" } });
        assert.equal(untrusted.code, 3, untrusted.stderr);
        assert.match(untrusted.stderr, /--ca FILE/);
        // AETHER_CA works like --ca.
        const viaEnv = await runCli([
          "--connect",
          `127.0.0.1:${cluster.nodes[1].ready!.apiPort}`,
          "--token",
          cluster.token,
          "kv",
          "get",
          "app/tls-greeting",
        ], { env: { AETHER_CA: `${cluster.certs}/ca.crt` } });
        assert.equal(viaEnv.code, 0, viaEnv.stderr);
      } finally {
        client.close();
      }
    } catch (e) {
      throw new Error(`${e}\n${cluster.nodes.map((n) => `--- ${n.id}\n${n.log}`).join("\n")}`);
    } finally {
      await cluster.close();
    }
  },
});

/** The members a node reaches over the mesh, asked over HTTPS. */
async function connectedPeers(
  cluster: TlsCluster,
  node: NodeProcess,
  client: Deno.HttpClient,
): Promise<string[]> {
  const response = await fetch(`https://127.0.0.1:${node.ready!.apiPort}/api/v1/status`, {
    client,
    headers: { authorization: `Bearer ${cluster.token}` },
  });
  const status = await response.json() as { members: { id: string; connected: boolean }[] };
  return status.members.filter((m) => m.connected && m.id !== node.id).map((m) => m.id).sort();
}

/** Restarts member `index` with other TLS flags (same id, ports, data and secret). */
async function restartWith(
  cluster: TlsCluster,
  index: number,
  extraArgs: string[],
  secretFile?: string,
): Promise<NodeProcess> {
  const old = cluster.nodes[index];
  await old.stop();
  const { apiPort, httpPort } = old.ready ?? {};
  const node = new NodeProcess({
    ...old.options,
    apiPort,
    httpPort,
    extraArgs,
    secretFile: secretFile ?? old.options.secretFile,
  });
  cluster.nodes[index] = node;
  await node.start();
  return node;
}

Deno.test({
  name:
    "tls: the mesh runs over wss://; a member whose certificate another CA signed is refused, then rejoins " +
    "with a certificate re-issued by the cluster CA",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await startTlsCluster(3);
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(`${cluster.certs}/ca.crt`)] });
    try {
      const [, n2, n3] = cluster.nodes;
      await waitFor(
        "n2 reaches n1 and n3",
        async () => (await connectedPeers(cluster, n2, client)).join() === "n1,n3" ? true : undefined,
      );
      // A plain ws:// client gets no answer from the cluster port: it speaks TLS only.
      const plain = await fetch(`http://127.0.0.1:${n3.ready!.clusterPort}/aether/mesh/1`).then(
        (r) => r.status,
        () => "failed",
      );
      assert.equal(plain, "failed");
      // n1 comes back with a certificate from a foreign CA. It trusts the cluster CA too (a bundle), so only
      // the acceptors' check of its client certificate can keep it out; it knows the cluster secret.
      const foreign = `${cluster.root}/foreign`;
      await clusterInit(foreign, ["n1"]);
      const bundle = `${foreign}/bundle.crt`;
      await Deno.writeTextFile(
        bundle,
        (await Deno.readTextFile(`${foreign}/ca.crt`)) + (await Deno.readTextFile(`${cluster.certs}/ca.crt`)),
      );
      const intruder = await restartWith(cluster, 0, [
        ...["--tls-cert", `${foreign}/n1.crt`, "--tls-key", `${foreign}/n1.key`, "--tls-ca", bundle],
      ]);
      await waitFor(
        "n2 to refuse the foreign certificate",
        () => Promise.resolve(cluster.nodes[1].log.includes("mesh refused a connection") ? true : undefined),
      );
      await new Promise((r) => setTimeout(r, 3000));
      assert.deepEqual(await connectedPeers(cluster, n2, client), ["n3"], "n2 does not accept the intruder");
      assert.deepEqual(await connectedPeers(cluster, n3, client), ["n2"], "n3 does not accept the intruder");
      assert.match(n2.log, /mesh refused a connection.*TLS/);
      assert.doesNotMatch(intruder.log, /mesh peer up/);
      // Rotation: a new certificate for n1 from the cluster CA (cluster init keeps the CA), then a restart.
      const oldCert = await Deno.readTextFile(`${cluster.certs}/n1.crt`);
      await clusterInit(cluster.certs, ["n1"]);
      assert.notEqual(await Deno.readTextFile(`${cluster.certs}/n1.crt`), oldCert);
      const rejoined = await restartWith(cluster, 0, tlsArgs(cluster.certs, "n1"));
      await waitFor(
        "n1 rejoins with its new certificate",
        async () => (await connectedPeers(cluster, rejoined, client)).join() === "n2,n3" ? true : undefined,
      );
    } catch (e) {
      throw new Error(`${e}\n${cluster.nodes.map((n) => `--- ${n.id}\n${n.log}`).join("\n")}`);
    } finally {
      client.close();
      await cluster.close();
    }
  },
});

/** Starts a single node with `args` and expects it to exit with code 2 and `message` on standard error. */
async function refusedFlags(root: string, args: string[], message: RegExp): Promise<void> {
  const node = new NodeProcess({
    id: "n1",
    peers: "n1@127.0.0.1:0",
    dataDir: `${root}/n1`,
    secretFile: `${root}/secret`,
    extraArgs: args,
    readyTimeoutMs: 20_000,
  });
  await assert.rejects(() => node.start());
  const status = await node.exited;
  assert.equal(status?.code, 2, node.log);
  assert.match(node.log, message);
}

Deno.test("tls: bad TLS flags stop the node with exit code 2 naming the flag", async () => {
  const root = await Deno.makeTempDir({ prefix: "aether-tls-flags-" });
  try {
    await Deno.writeTextFile(`${root}/secret`, `test-secret-${crypto.randomUUID()}`);
    await clusterInit(`${root}/a`, ["n1", "n2"]);
    await clusterInit(`${root}/b`, ["n1"]);
    const a = `${root}/a`;
    await refusedFlags(root, ["--tls-cert", `${a}/n1.crt`], /--tls-key: is required with --tls-cert/);
    await refusedFlags(root, ["--tls-key", `${a}/n1.key`], /--tls-cert: is required with --tls-key/);
    await refusedFlags(root, ["--tls-ca", `${a}/ca.crt`], /--tls-ca: needs --tls-cert and --tls-key/);
    await refusedFlags(
      root,
      ["--tls-cert", `${a}/n1.crt`, "--tls-key", `${a}/n2.key`],
      /--tls-key: ".*n2.key" is not the private key of ".*n1.crt"/,
    );
    await refusedFlags(
      root,
      ["--tls-cert", `${a}/n1.crt`, "--tls-key", `${a}/none.key`],
      /--tls-key: cannot read/,
    );
    await refusedFlags(
      root,
      ["--tls-cert", `${a}/n1.crt`, "--tls-key", `${a}/n1.key`, "--tls-ca", `${root}/b/ca.crt`],
      /--tls-cert: ".*n1.crt" is not signed by the CA/,
    );
    await refusedFlags(
      root,
      ["--tls-cert", `${root}/secret`, "--tls-key", `${a}/n1.key`],
      /--tls-cert: ".*secret" is not a PEM certificate/,
    );
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

Deno.test("tls: with --app-guard off the application port (plain Deno.serve) serves HTTPS too", async () => {
  const root = await Deno.makeTempDir({ prefix: "aether-tls-unguarded-" });
  const certs = `${root}/certs`;
  const node = new NodeProcess({
    id: "n1",
    peers: "n1@127.0.0.1:0",
    dataDir: `${root}/n1`,
    secretFile: `${root}/secret`,
    extraArgs: [...tlsArgs(certs, "n1"), "--app-guard", "off"],
  });
  try {
    await Deno.writeTextFile(`${root}/secret`, `test-secret-${crypto.randomUUID()}`);
    await clusterInit(certs, ["n1"]);
    await node.start();
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(`${certs}/ca.crt`)] });
    try {
      const response = await fetch(`https://localhost:${node.ready!.httpPort}/nothing`, { client });
      assert.equal(response.status, 404);
      await response.body?.cancel();
    } finally {
      client.close();
    }
  } finally {
    await node.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name:
    "tls: the cluster CA is rotated on a running cluster, one member restart at a time, through a bundle " +
    "of both CAs; data written before is read over HTTPS with the new CA after",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await startTlsCluster(3);
    const oldCa = await Deno.readTextFile(`${cluster.certs}/ca.crt`);
    const next = `${cluster.root}/next`;
    await clusterInit(next, ["n1", "n2", "n3"]);
    const bundle = `${cluster.root}/bundle.crt`;
    await Deno.writeTextFile(bundle, oldCa + (await Deno.readTextFile(`${next}/ca.crt`)));
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(bundle)] });
    const allConnected = (what: string) =>
      waitFor(what, async () => {
        const views = await Promise.all(cluster.nodes.map((n) => connectedPeers(cluster, n, client)));
        return views.every((peers) => peers.length === 2) ? true : undefined;
      });
    try {
      await allConnected("the cluster on the old CA");
      assert.equal((await cli(cluster, ["kv", "put", "app/rotation", "before"], bundle)).code, 0);
      // 1: every member trusts both CAs (still presenting the old certificate).
      for (const [i, id] of ["n1", "n2", "n3"].entries()) {
        await restartWith(cluster, i, [
          ...["--tls-cert", `${cluster.certs}/${id}.crt`, "--tls-key", `${cluster.certs}/${id}.key`],
          ...["--tls-ca", bundle],
        ]);
        await allConnected(`${id} back trusting both CAs`);
      }
      // 2: every member presents a certificate from the new CA (the others still mix old and new).
      for (const [i, id] of ["n1", "n2", "n3"].entries()) {
        await restartWith(cluster, i, [
          ...["--tls-cert", `${next}/${id}.crt`, "--tls-key", `${next}/${id}.key`, "--tls-ca", bundle],
        ]);
        await allConnected(`${id} back with a new-CA certificate`);
      }
      // 3: the old CA is dropped.
      for (const [i] of ["n1", "n2", "n3"].entries()) {
        await restartWith(cluster, i, tlsArgs(next, cluster.nodes[i].id));
        await allConnected(`${cluster.nodes[i].id} back trusting only the new CA`);
      }
      const get = await cli(cluster, ["kv", "get", "app/rotation"], `${next}/ca.crt`);
      assert.equal(get.code, 0, get.stderr);
      assert.match(get.stdout, /before/);
      // The old CA no longer opens the API.
      const stale = await cli(cluster, ["status"], `${cluster.certs}/ca.crt`);
      assert.equal(stale.code, 3, stale.stderr);
    } catch (e) {
      throw new Error(`${e}\n${cluster.nodes.map((n) => `--- ${n.id}\n${n.log}`).join("\n")}`);
    } finally {
      client.close();
      await cluster.close();
    }
  },
});

Deno.test({
  name: "tls: the cluster secret is rotated by restarting members one at a time; a majority stays connected",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await startTlsCluster(3);
    const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(`${cluster.certs}/ca.crt`)] });
    const newSecret = `${cluster.root}/secret-next`;
    await Deno.writeTextFile(newSecret, `rotated-secret-${crypto.randomUUID()}`);
    const connected = async (i: number) => (await connectedPeers(cluster, cluster.nodes[i], client)).join();
    try {
      await waitFor("all connected", async () => (await connected(0)) === "n2,n3" ? true : undefined);
      // n1 on the new secret: alone (n2 and n3 still hold the old one and a majority).
      await restartWith(cluster, 0, tlsArgs(cluster.certs, "n1"), newSecret);
      await waitFor("n2 and n3 still together", async () => (await connected(1)) === "n3" ? true : undefined);
      assert.equal(await connected(0), "");
      // n2 too: n1 and n2 form the majority on the new secret; n3 is the one left out.
      await restartWith(cluster, 1, tlsArgs(cluster.certs, "n2"), newSecret);
      await waitFor(
        "n1 and n2 on the new secret",
        async () => (await connected(0)) === "n2" ? true : undefined,
      );
      // n3 last: everyone together again.
      await restartWith(cluster, 2, tlsArgs(cluster.certs, "n3"), newSecret);
      await waitFor(
        "all on the new secret",
        async () =>
          (await Promise.all([0, 1, 2].map(connected))).join(" ") === "n2,n3 n1,n3 n1,n2" ? true : undefined,
      );
      const put = await cli(cluster, ["kv", "put", "app/after-rotation", "ok"]);
      assert.equal(put.code, 0, put.stderr);
    } catch (e) {
      throw new Error(`${e}\n${cluster.nodes.map((n) => `--- ${n.id}\n${n.log}`).join("\n")}`);
    } finally {
      client.close();
      await cluster.close();
    }
  },
});
