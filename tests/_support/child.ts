/**
 * A Deno child process for tests: spawned from `Deno.execPath()` with piped stdin (children in this project
 * exit when stdin closes), its stdout read as JSON lines, its stderr kept for failure messages.
 *
 *   const child = spawnDenoChild(["run", "--allow-net=127.0.0.1", "tests/_support/mesh_member.ts", ...]);
 *   try { const ready = await child.waitForLine((l) => l.event === "ready"); ... } finally { await child.stop(); }
 */

export type JsonLine = Record<string, unknown>;

export interface DenoChild {
  readonly pid: number;
  /** Every JSON line printed so far. */
  readonly lines: readonly JsonLine[];
  /** Resolves with the first line (already printed or still to come) that matches; rejects after timeoutMs. */
  waitForLine(match: (line: JsonLine) => boolean, timeoutMs?: number): Promise<JsonLine>;
  /** Writes one line to the child's stdin. */
  writeLine(text: string): Promise<void>;
  kill(signal: Deno.Signal): void;
  /** Closes stdin, kills the child if it is still running, awaits its exit and its output streams. */
  stop(): Promise<Deno.CommandStatus>;
  /** What the child wrote on stderr (for assertion messages). */
  stderr(): string;
}

export function spawnDenoChild(args: string[], options: { cwd?: string } = {}): DenoChild {
  const process = new Deno.Command(Deno.execPath(), {
    args,
    cwd: options.cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
  }).spawn();
  const lines: JsonLine[] = [];
  const listeners = new Set<() => void>();
  let stderrText = "";
  let exited = false;

  const readStdout = (async () => {
    let buffered = "";
    for await (const chunk of process.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const text = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!text) continue;
        try {
          lines.push(JSON.parse(text));
        } catch {
          lines.push({ text });
        }
        for (const listener of [...listeners]) listener();
      }
    }
  })();
  const readStderr = (async () => {
    for await (const chunk of process.stderr.pipeThrough(new TextDecoderStream())) {
      stderrText = (stderrText + chunk).slice(-64 * 1024);
    }
  })();
  const status = process.status.then((s) => {
    exited = true;
    for (const listener of [...listeners]) listener();
    return s;
  });
  const stdin = process.stdin.getWriter();
  let stdinClosed = false;

  return {
    pid: process.pid,
    lines,
    waitForLine(match, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        let seen = 0;
        const check = () => {
          for (; seen < lines.length; seen++) {
            if (match(lines[seen])) {
              done();
              resolve(lines[seen]);
              return;
            }
          }
          if (exited) {
            done();
            reject(
              new Error(
                `child ${process.pid} exited before printing the expected line; stderr:\n${stderrText}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `child ${process.pid}: no matching line within ${timeoutMs} ms; stderr:\n${stderrText}`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async writeLine(text) {
      await stdin.write(new TextEncoder().encode(text + "\n"));
    },
    kill(signal) {
      if (!exited) process.kill(signal);
    },
    async stop() {
      if (!stdinClosed) {
        stdinClosed = true;
        await stdin.close().catch(() => {});
      }
      // A stopped child cannot see its stdin close.
      if (!exited) {
        try {
          process.kill("SIGCONT");
        } catch { /* gone */ }
      }
      const timer = setTimeout(() => {
        if (!exited) process.kill("SIGKILL");
      }, 3000);
      const result = await status;
      clearTimeout(timer);
      await Promise.all([readStdout, readStderr]);
      return result;
    },
    stderr: () => stderrText,
  };
}
