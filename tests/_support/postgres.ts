/**
 * A real PostgreSQL server for tests and benchmarks: Debian's `postgresql` (installed by .ci/run when missing),
 * initialised into a temporary directory and listening on a free loopback TCP port only (no unix socket), with
 * password authentication (scram-sha-256) so a wrong credential is refused like on a real deployment.
 *
 *   await using pg = await startPostgres();
 *   const backend = await startPostgresBackend({ url: pg.url, ... });
 *
 * PostgreSQL refuses to run as root; when the test runs as root the server runs as the `postgres` system user
 * (or `nobody`) through `setpriv`, and its directory is handed to that user. The server runs under a small
 * `sh` watchdog whose standard input is a pipe from this process: if the test runner dies, the pipe closes and
 * the watchdog shuts the server down and removes its directory, so nothing is left behind. `stop()` shuts it
 * down (fast mode, then SIGKILL after a grace period) and removes the directory.
 */

import { freePort } from "../../runtime/forge/mod.ts";

/** The directory of the newest installed PostgreSQL's binaries, or undefined when none is installed. */
export function postgresBinDir(): string | undefined {
  let versions: number[] = [];
  try {
    versions = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => Number(e.name)).filter((n) =>
      Number.isInteger(n)
    );
  } catch {
    return undefined;
  }
  for (const version of versions.sort((a, b) => b - a)) {
    const dir = `/usr/lib/postgresql/${version}/bin`;
    try {
      Deno.statSync(`${dir}/initdb`);
      Deno.statSync(`${dir}/postgres`);
      return dir;
    } catch { /* incomplete install: try the next version */ }
  }
  return undefined;
}

/** True when a PostgreSQL server can be started here (tests use it for `ignore`). */
export const postgresPresent: boolean = postgresBinDir() !== undefined;

export interface PostgresOptions {
  /** The superuser's name (also the URL's user); default `aether`. */
  user?: string;
  /** The database the URL names; created at start when it is not `postgres`. Default `aether`. */
  database?: string;
  /** Extra `-c name=value` server settings, e.g. `{ max_connections: "20" }`. */
  settings?: Record<string, string>;
  /** How long to wait for the server to accept connections; default 30 s. */
  readyTimeoutMs?: number;
}

export interface PostgresServer extends AsyncDisposable {
  /** `postgres://user:password@127.0.0.1:port/database` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** The server's data directory (inside the temporary directory). */
  readonly dataDir: string;
  /** The postmaster's process id while it runs, undefined after stop/crash. */
  readonly pid: number | undefined;
  /** The URL for another database on the same server, or with another password (for bad-credential tests). */
  urlFor(options: { database?: string; password?: string; user?: string }): string;
  /** Runs SQL through `psql` as the superuser (e.g. CREATE DATABASE); returns psql's output. */
  psql(sql: string, database?: string): Promise<string>;
  /**
   * Kills the server the hard way: SIGKILL to the postmaster and every backend (each connection drops at
   * once; the next start runs crash recovery). The directory stays, so `start()` brings the same data back.
   */
  crash(): Promise<void>;
  /** Starts the server again on the same port and data after `crash()` or `shutdown()`. */
  start(): Promise<void>;
  /** Fast shutdown (clients disconnected, checkpoint written), keeping the directory. */
  shutdown(): Promise<void>;
  /** Shuts the server down and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
  /** The server's recent log (for assertion messages). */
  log(): string;
}

const READY_LINE = "database system is ready to accept connections";

/** The account the server runs as when this process is root (PostgreSQL refuses root). */
interface RunAs {
  uid: number;
  gid: number;
}

function unprivilegedAccount(): RunAs | undefined {
  if (Deno.uid() !== 0) return undefined;
  const passwd = Deno.readTextFileSync("/etc/passwd").split("\n").map((line) => line.split(":"));
  for (const name of ["postgres", "nobody"]) {
    const entry = passwd.find((fields) => fields[0] === name);
    if (entry) return { uid: Number(entry[2]), gid: Number(entry[3]) };
  }
  throw new Error(
    "running as root and neither a `postgres` nor a `nobody` account exists to run PostgreSQL as",
  );
}

function asUser(runAs: RunAs | undefined, command: string[]): string[] {
  if (!runAs) return command;
  return ["setpriv", `--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, "--clear-groups", "--", ...command];
}

async function run(command: string[], env: Record<string, string> = {}): Promise<string> {
  const output = await new Deno.Command(command[0], {
    args: command.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { LC_ALL: "C", ...env },
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  if (!output.success) throw new Error(`${command.join(" ")} failed (exit ${output.code}):\n${text}`);
  return text;
}

async function chownTree(path: string, runAs: RunAs): Promise<void> {
  await Deno.chown(path, runAs.uid, runAs.gid);
  for await (const entry of Deno.readDir(path)) {
    const child = `${path}/${entry.name}`;
    if (entry.isDirectory) await chownTree(child, runAs);
    else await Deno.chown(child, runAs.uid, runAs.gid);
  }
}

/** Initialises a data directory and starts PostgreSQL on a free loopback port; resolves once it accepts. */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin) {
    throw new Error(
      "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); install Debian's `postgresql`",
    );
  }
  const user = options.user ?? "aether";
  const database = options.database ?? "aether";
  const password = `pw-${crypto.randomUUID()}`;
  const runAs = unprivilegedAccount();
  const root = await Deno.makeTempDir({ prefix: "aether-postgres-" });
  const dataDir = `${root}/data`;
  try {
    await Deno.writeTextFile(`${root}/pwfile`, password + "\n");
    if (runAs) await chownTree(root, runAs);
    await run(asUser(runAs, [
      `${bin}/initdb`,
      "-D",
      dataDir,
      "-U",
      user,
      `--pwfile=${root}/pwfile`,
      "--auth=scram-sha-256",
      "-E",
      "UTF8",
      "--locale=C",
      "--no-sync",
    ]));
    await Deno.remove(`${root}/pwfile`);
  } catch (error) {
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw error;
  }
  const server = new RunningPostgres(bin, root, dataDir, runAs, user, password, database, options);
  try {
    await server.startOnFreePort();
    if (database !== "postgres") await server.psql(`CREATE DATABASE "${database}"`, "postgres");
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

class RunningPostgres implements PostgresServer {
  readonly host = "127.0.0.1";
  port = 0;
  #watchdog: Deno.ChildProcess | undefined;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #postmasterPid: number | undefined;
  #exited: Promise<unknown> = Promise.resolve();
  #log = "";
  #removed = false;

  constructor(
    readonly bin: string,
    readonly root: string,
    readonly dataDir: string,
    readonly runAs: RunAs | undefined,
    readonly user: string,
    readonly password: string,
    readonly database: string,
    readonly options: PostgresOptions,
  ) {}

  get url(): string {
    return this.urlFor({});
  }

  get pid(): number | undefined {
    return this.#postmasterPid;
  }

  urlFor(options: { database?: string; password?: string; user?: string }): string {
    const user = encodeURIComponent(options.user ?? this.user);
    const password = encodeURIComponent(options.password ?? this.password);
    return `postgres://${user}:${password}@${this.host}:${this.port}/${options.database ?? this.database}`;
  }

  log(): string {
    return this.#log;
  }

  /** A port picked by binding 0 may be taken before the server binds it: try a few. */
  async startOnFreePort(): Promise<void> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      this.port = freePort();
      try {
        await this.start();
        return;
      } catch (error) {
        lastError = error;
        if (!/could not bind|Address already in use/i.test(String(error))) throw error;
      }
    }
    throw lastError;
  }

  async start(): Promise<void> {
    if (this.#watchdog) throw new Error("PostgreSQL is already running");
    const settings: Record<string, string> = {
      listen_addresses: this.host,
      port: String(this.port),
      unix_socket_directories: "",
      // No fsync (a test machine's disk is shared): a committed transaction's WAL still reaches the OS at
      // commit (synchronous_commit stays on), so it survives a killed server, not a lost machine.
      fsync: "off",
      full_page_writes: "off",
      log_min_messages: "warning",
      ...this.options.settings,
    };
    const postgres = [
      `${this.bin}/postgres`,
      "-D",
      this.dataDir,
      ...Object.entries(settings).flatMap(([name, value]) => ["-c", `${name}=${value}`]),
    ];
    // The watchdog prints the postmaster's pid, then waits for its stdin to close (our stop, or this process
    // dying) and asks the server for a fast shutdown. Our own shutdowns write `keep` first; a pipe closed
    // without it means this process died, and the watchdog removes the directory too.
    const script = '"$@" & pid=$!; echo "postmaster $pid"; said=$(cat); kill -INT "$pid" 2>/dev/null; ' +
      'wait "$pid"; [ "$said" = keep ] || rm -rf "$AETHER_POSTGRES_ROOT"';
    const watchdog = new Deno.Command("sh", {
      args: ["-c", script, "sh", ...asUser(this.runAs, postgres)],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { LC_ALL: "C", AETHER_POSTGRES_ROOT: this.root },
    }).spawn();
    this.#log = ""; // this start's lines only: the ready line must be a new one
    this.#watchdog = watchdog;
    this.#stdin = watchdog.stdin.getWriter();
    this.#postmasterPid = undefined;
    const ready = Promise.withResolvers<void>();
    let exitedEarly = false;
    const readStream = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        this.#log = (this.#log + chunk).slice(-64 * 1024);
        const pidMatch = /postmaster (\d+)/.exec(this.#log);
        if (pidMatch && this.#postmasterPid === undefined) this.#postmasterPid = Number(pidMatch[1]);
        if (this.#log.includes(READY_LINE)) ready.resolve();
      }
    };
    const streams = Promise.all([readStream(watchdog.stdout), readStream(watchdog.stderr)]);
    this.#exited = Promise.all([watchdog.status, streams]).then(() => {
      exitedEarly = true;
      ready.reject(new Error(`PostgreSQL exited before it was ready:\n${this.#log}`));
    });
    const timeoutMs = this.options.readyTimeoutMs ?? 30_000;
    const timer = setTimeout(
      () => ready.reject(new Error(`PostgreSQL not ready within ${timeoutMs} ms:\n${this.#log}`)),
      timeoutMs,
    );
    try {
      await ready.promise;
    } catch (error) {
      if (!exitedEarly) await this.#halt(0);
      else await this.#reap();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  async psql(sql: string, database = this.database): Promise<string> {
    return await run(
      [`${this.bin}/psql`, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", this.urlFor({ database }), "-c", sql],
    );
  }

  async crash(): Promise<void> {
    const pid = this.#postmasterPid;
    if (!pid) return;
    const backends = await childPids(pid);
    for (const target of [pid, ...backends]) {
      try {
        Deno.kill(target, "SIGKILL");
      } catch { /* already gone */ }
    }
    await this.#reap();
    // The next start refuses while an old backend still holds the shared memory: wait for them to be gone
    // (a backend forked after the listing notices the postmaster's death and exits on its own).
    await waitUntilGone(backends, 5_000);
  }

  async shutdown(): Promise<void> {
    await this.#halt(10_000);
  }

  async stop(): Promise<void> {
    await this.#halt(10_000);
    if (this.#removed) return;
    this.#removed = true;
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Closes the watchdog's stdin (fast shutdown); SIGKILLs the postmaster if it outlives `graceMs`. */
  async #halt(graceMs: number): Promise<void> {
    if (!this.#watchdog) return;
    const pid = this.#postmasterPid;
    await this.#closeStdin();
    const timer = setTimeout(() => {
      if (pid) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
    }, graceMs);
    await this.#reap();
    clearTimeout(timer);
  }

  /** Tells the watchdog to keep the directory (an orderly shutdown), then closes its stdin. */
  async #closeStdin(): Promise<void> {
    const stdin = this.#stdin;
    if (!stdin) return;
    this.#stdin = undefined;
    await stdin.write(new TextEncoder().encode("keep")).catch(() => {});
    await stdin.close().catch(() => {});
  }

  async #reap(): Promise<void> {
    const watchdog = this.#watchdog;
    if (!watchdog) return;
    await this.#closeStdin();
    await this.#exited;
    this.#watchdog = undefined;
    this.#stdin = undefined;
    this.#postmasterPid = undefined;
  }
}

/** The direct children of a process (the postmaster's backends), read from /proc. */
async function childPids(pid: number): Promise<number[]> {
  try {
    const text = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`);
    return text.trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function waitUntilGone(pids: number[], timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (const pid of pids) {
    while (Date.now() < until) {
      try {
        await Deno.stat(`/proc/${pid}`);
      } catch {
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
