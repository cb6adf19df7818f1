/** `aether cluster init`: real openssl runs; the files are checked with node:crypto. */

import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { CliError } from "./client.ts";
import { initClusterCerts } from "./cluster_certs.ts";

const read = (path: string) => Deno.readTextFileSync(path);

Deno.test("cluster init: a CA and per-node certificates signed by it; keys 0600; the CA is kept on a rerun", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/certs`;
    const first = await initClusterCerts({
      out,
      nodes: ["n1", "n2"],
      hosts: ["10.0.0.5", "node1.example"],
      days: 30,
    });
    assert(first.createdCa);
    const ca = new X509Certificate(read(`${out}/ca.crt`));
    assert(ca.ca, "the CA certificate is a CA");
    for (const id of ["n1", "n2"]) {
      const cert = new X509Certificate(read(`${out}/${id}.crt`));
      assert(cert.verify(ca.publicKey), `${id}.crt is signed by the cluster CA`);
      assert(cert.checkPrivateKey(createPrivateKey(read(`${out}/${id}.key`))), `${id}.key matches`);
      for (
        const name of [
          `DNS:${id}`,
          "DNS:localhost",
          "IP Address:127.0.0.1",
          "IP Address:10.0.0.5",
          "DNS:node1.example",
        ]
      ) {
        assert(cert.subjectAltName?.includes(name), `${id}: ${name} in ${cert.subjectAltName}`);
      }
      assertEquals((await Deno.stat(`${out}/${id}.key`)).mode! & 0o777, 0o600);
    }
    assertEquals((await Deno.stat(`${out}/ca.key`)).mode! & 0o777, 0o600);
    const caPem = read(`${out}/ca.crt`);
    const oldN1 = read(`${out}/n1.crt`);
    const again = await initClusterCerts({ out, nodes: ["n1", "n3"], hosts: [], days: 30 });
    assert(!again.createdCa);
    assertEquals(read(`${out}/ca.crt`), caPem, "the CA is kept");
    assert(read(`${out}/n1.crt`) !== oldN1, "n1 got a new certificate");
    assert(new X509Certificate(read(`${out}/n3.crt`)).verify(ca.publicKey));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cluster init: bad input is refused naming the flag", async () => {
  const out = "/nonexistent-never-created";
  const cases: [Parameters<typeof initClusterCerts>[0], string][] = [
    [{ out: "", nodes: ["n1"], hosts: [], days: 1 }, "--out"],
    [{ out, nodes: [], hosts: [], days: 1 }, "--nodes"],
    [{ out, nodes: ["N1"], hosts: [], days: 1 }, '--nodes: "N1"'],
    [{ out, nodes: ["n1", "n1"], hosts: [], days: 1 }, "twice"],
    [{ out, nodes: ["n1"], hosts: ["a b"], days: 1 }, '--hosts: "a b"'],
    [{ out, nodes: ["n1"], hosts: [], days: 0 }, "--days"],
  ];
  for (const [options, text] of cases) {
    await rejects(() => initClusterCerts(options), (e) => e instanceof CliError && e.message.includes(text));
  }
});
