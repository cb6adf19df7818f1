/**
 * `aether cluster init`: a cluster CA and one certificate + key per node, made with the `openssl` binary.
 *
 * Why openssl and not an npm package: it is on every Debian/Ubuntu host (and most others), works offline, and
 * its output (PEM, PKCS#8 keys, X.509 v3 extensions) is exactly what Deno's TLS (rustls) and `node:tls` read,
 * with nothing added to deno.lock. Keys are P-256 ECDSA; private keys are written with mode 0600.
 *
 * A directory that already holds `ca.key` keeps its CA: the command then only issues (or re-issues) the
 * listed nodes' certificates, which is how certificates are rotated and members added.
 */

import { CliError, EXIT_FAILED, EXIT_USAGE } from "./client.ts";

/** `openssl req` arguments for a new unencrypted P-256 key (the CA's and every node's). */
const NEW_P256_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

export interface ClusterCertOptions {
  /** Directory the files go into (created when missing). */
  out: string;
  /** Node ids; each gets `<id>.crt` and `<id>.key`. */
  nodes: string[];
  /** Extra host names or IP addresses every node certificate is valid for. */
  hosts: string[];
  /** Validity of node certificates in days (the CA gets ten years). */
  days: number;
}

export interface ClusterCertResult {
  /** Whether the CA was created now (false: an existing one was reused). */
  createdCa: boolean;
  /** Every file written, in order. */
  files: string[];
}

const CA_DAYS = 3650;
const NODE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const HOST = /^[A-Za-z0-9.:-]{1,253}$/;

export async function initClusterCerts(options: ClusterCertOptions): Promise<ClusterCertResult> {
  checkOptions(options);
  await Deno.mkdir(options.out, { recursive: true, mode: 0o700 });
  const caCert = `${options.out}/ca.crt`;
  const caKey = `${options.out}/ca.key`;
  const files: string[] = [];
  const createdCa = !(await exists(caKey));
  if (createdCa) {
    await openssl([
      "req",
      "-x509",
      ...NEW_P256_KEY,
      "-keyout",
      caKey,
      "-out",
      caCert,
      "-days",
      String(CA_DAYS),
      "-subj",
      "/CN=aether cluster CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    await Deno.chmod(caKey, 0o600);
    files.push(caCert, caKey);
  } else if (!(await exists(caCert))) {
    throw new CliError(`${options.out} holds ca.key but no ca.crt; restore it or use an empty --out`);
  }
  for (const id of options.nodes) files.push(...await issueNodeCert(options, id, caCert, caKey));
  return { createdCa, files };
}

function checkOptions(options: ClusterCertOptions): void {
  if (!options.out) throw new CliError("--out: is required (the directory for the files)", EXIT_USAGE);
  if (options.nodes.length === 0) throw new CliError("--nodes: is required, e.g. n1,n2,n3", EXIT_USAGE);
  for (const id of options.nodes) {
    if (!NODE_ID.test(id)) {
      throw new CliError(`--nodes: "${id}" is not a node id (lower-case letters, digits, '-')`, EXIT_USAGE);
    }
  }
  if (new Set(options.nodes).size !== options.nodes.length) {
    throw new CliError("--nodes: lists a node twice", EXIT_USAGE);
  }
  for (const host of options.hosts) {
    if (!HOST.test(host)) {
      throw new CliError(`--hosts: "${host}" is not a host name or IP address`, EXIT_USAGE);
    }
  }
  if (!Number.isInteger(options.days) || options.days < 1 || options.days > CA_DAYS) {
    throw new CliError(`--days: ${options.days} is not from 1 to ${CA_DAYS}`, EXIT_USAGE);
  }
}

/** `<id>.key` and `<id>.crt`: valid for the id itself, localhost, loopback and --hosts; server and client use. */
async function issueNodeCert(
  options: ClusterCertOptions,
  id: string,
  caCert: string,
  caKey: string,
): Promise<string[]> {
  const key = `${options.out}/${id}.key`;
  const cert = `${options.out}/${id}.crt`;
  const work = await Deno.makeTempDir({ prefix: "aether-cert-" });
  try {
    const csr = `${work}/${id}.csr`;
    const ext = `${work}/${id}.ext`;
    const names = [id, "localhost", "127.0.0.1", "::1", ...options.hosts];
    const san = [...new Set(names)].map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(",");
    await Deno.writeTextFile(
      ext,
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth,clientAuth",
        `subjectAltName=${san}`,
        "",
      ].join("\n"),
    );
    // The key is created in the work directory and moved with mode 0600, so it is never world-readable.
    const tempKey = `${work}/${id}.key`;
    await openssl([
      "req",
      ...NEW_P256_KEY,
      "-keyout",
      tempKey,
      "-out",
      csr,
      "-subj",
      `/CN=${id}`,
    ]);
    await openssl([
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      caCert,
      "-CAkey",
      caKey,
      "-set_serial",
      `0x${randomHex(16)}`,
      "-days",
      String(options.days),
      "-extfile",
      ext,
      "-out",
      cert,
    ]);
    await Deno.writeFile(key, await Deno.readFile(tempKey), { mode: 0o600 });
    await Deno.chmod(key, 0o600);
    return [cert, key];
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

async function openssl(args: string[]): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped", stdin: "null" })
      .output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new CliError(
        "cannot run openssl: not found on PATH (install it: apt-get install openssl)",
        EXIT_FAILED,
      );
    }
    throw e;
  }
  if (!output.success) {
    const text = new TextDecoder().decode(output.stderr).trim().split("\n").slice(-3).join("; ");
    throw new CliError(`openssl ${args[0]} failed: ${text}`, EXIT_FAILED);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

function randomHex(bytes: number): string {
  const data = crypto.getRandomValues(new Uint8Array(bytes));
  data[0] &= 0x7f; // a positive serial number
  return [...data].map((b) => b.toString(16).padStart(2, "0")).join("");
}
