import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { AetherError } from "../core/mod.ts";
import type { DecidedPhase, PhaseRecord } from "../consensus/mod.ts";
import type { KvCommand } from "./commands.ts";
import { KvState } from "./state.ts";
import { ConsensusStorage, restoreKvState, type StorageOptions } from "./storage.ts";
import { batchForPhase, CRASH_LIMITS, CRASH_NODE, recordForPhase } from "./testdata/storage_crash_child.ts";

const NODE: StorageOptions = { nodeId: "n1", members: ["n1", "n2", "n3"], fsync: "never" };

function withDir(fn: (dir: string) => void | Promise<void>): () => Promise<void> {
  return async () => {
    const dir = Deno.makeTempDirSync({ prefix: "aether-storage-" });
    try {
      await fn(dir);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

function decided(from: number, to: number): DecidedPhase<KvCommand>[] {
  const out: DecidedPhase<KvCommand>[] = [];
  for (let phase = from; phase <= to; phase++) out.push({ phase, batch: batchForPhase(phase) });
  return out;
}

/** The state a member reaches by applying phases 1..last. */
function expectedState(last: number): KvState {
  const state = new KvState();
  for (let phase = 1; phase <= last; phase++) {
    const batch = batchForPhase(phase);
    if (batch) state.applyBatch(batch);
  }
  return state;
}

/** Commits phases 1..last one step each, snapshotting whenever the storage says one is due. */
function fill(storage: ConsensusStorage, last: number, state = new KvState()): KvState {
  for (let phase = storage.lastDecided + 1; phase <= last; phase++) {
    const batch = batchForPhase(phase);
    storage.commit({ decisions: [{ phase, batch }], record: recordForPhase(phase + 1) });
    if (batch) state.applyBatch(batch);
  }
  return state;
}

function rejects(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AetherError, `expected an AetherError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test(
  "storage: a committed step survives close and reopen, values and undefined fields intact",
  withDir((dir) => {
    const storage = ConsensusStorage.openInDir(dir, NODE);
    const withCas: DecidedPhase<KvCommand> = {
      phase: 1,
      batch: {
        id: "n2:a:1",
        submitter: "n2",
        createdAt: 1.5,
        commands: [
          { type: "put", key: "app/a", value: new Uint8Array([0, 255, 7]), ifRevision: 0 },
          { type: "put", key: "app/b", value: new Uint8Array(0) },
          {
            type: "txn",
            compare: [{ key: "app/a", modRevision: 1 }],
            success: [{ op: "deletePrefix", prefix: "app/" }],
            failure: [],
          },
        ],
      },
    };
    storage.commit({ decisions: [withCas, { phase: 2, batch: null }], record: { phase: 3, rounds: [] } });
    const record: PhaseRecord<KvCommand> = {
      phase: 3,
      proposal: null,
      rounds: [{ vote1: { value: 0 }, vote2: { value: 2 } }, { vote1: { value: 1, batchId: "x" } }],
    };
    storage.commit({ record });
    storage.close();

    const again = ConsensusStorage.openInDir(dir, NODE);
    try {
      const loaded = again.load();
      assert.equal(loaded.restored.lastDecided, 2);
      assert.deepEqual(loaded.restored.record, record);
      assert.equal(loaded.snapshot, undefined);
      assert.deepEqual(loaded.decisions, [withCas, { phase: 2, batch: null }]);
      const second = loaded.decisions[0].batch!.commands[1];
      assert.ok(!("ifRevision" in second), "an absent ifRevision must stay absent, not become null");
      // A record that was not proposed yet stays without a proposal (undefined, not null).
      again.commit({ record: { phase: 3, rounds: [] } });
      assert.ok(!("proposal" in again.load().restored.record!));
    } finally {
      again.close();
    }
  }),
);

Deno.test(
  "storage: the record of a decided phase is not handed back",
  withDir((dir) => {
    const storage = ConsensusStorage.openInDir(dir, NODE);
    storage.commit({ record: recordForPhase(1) });
    assert.equal(storage.load().restored.record?.phase, 1);
    storage.commit({ decisions: decided(1, 1) });
    assert.equal(storage.load().restored.record, undefined);
    storage.close();
  }),
);

Deno.test(
  "storage: decisions that do not follow the last decided phase are refused and nothing is written",
  withDir((dir) => {
    const storage = ConsensusStorage.openInDir(dir, NODE);
    storage.commit({ decisions: decided(1, 2) });
    rejects(
      () => storage.commit({ decisions: decided(4, 4) }),
      "internal",
      /phase 4 does not follow phase 2/,
    );
    rejects(() => storage.commit({ decisions: [...decided(3, 3), ...decided(5, 5)] }), "internal", /phase 5/);
    rejects(
      () => storage.commit({ decisions: decided(2, 2) }),
      "internal",
      /phase 2 does not follow phase 2/,
    );
    storage.close();
    const again = ConsensusStorage.openInDir(dir, NODE);
    assert.equal(again.lastDecided, 2);
    assert.deepEqual(again.load().decisions, decided(1, 2));
    again.close();
  }),
);

Deno.test(
  "storage: a snapshot truncates the log but keeps the tail and everything after it; replay rebuilds the state",
  withDir((dir) => {
    const storage = ConsensusStorage.openInDir(dir, {
      ...NODE,
      retainDecisions: 10,
      snapshotEveryDecisions: 20,
    });
    const state = fill(storage, 19);
    assert.equal(storage.snapshotDue(), false);
    fill(storage, 20, state);
    assert.equal(storage.snapshotDue(), true);
    fill(storage, 50, state);
    const at45 = expectedState(45);
    storage.saveSnapshot(45, at45.snapshot());
    // Keeps phases after min(45, 50 - 10) = 40.
    assert.deepEqual(storage.stats(), {
      lastDecided: 50,
      snapshotPhase: 45,
      firstLogged: 41,
      logEntries: 10,
      decisionsSinceSnapshot: 5,
      bytesSinceSnapshot: storage.stats().bytesSinceSnapshot,
    });
    assert.equal(storage.snapshotDue(), false);
    storage.close();

    const again = ConsensusStorage.openInDir(dir, {
      ...NODE,
      retainDecisions: 10,
      snapshotEveryDecisions: 20,
    });
    assert.equal(again.stats().firstLogged, 41);
    assert.equal(again.stats().decisionsSinceSnapshot, 5);
    const loaded = again.load();
    assert.equal(loaded.snapshot?.phase, 45);
    assert.deepEqual(loaded.decisions.map((d) => d.phase), [46, 47, 48, 49, 50]);
    assert.deepEqual(restoreKvState(loaded).snapshot(), state.snapshot());
    assert.deepEqual(restoreKvState(loaded).snapshot(), expectedState(50).snapshot());

    // An older snapshot point than the tail: everything after the snapshot stays.
    fill(again, 100);
    again.saveSnapshot(60, expectedState(60).snapshot());
    assert.equal(again.stats().firstLogged, 61);
    rejects(() => again.saveSnapshot(59, new Uint8Array()), "internal", /between the current snapshot/);
    rejects(() => again.saveSnapshot(101, new Uint8Array()), "internal", /last decided phase 100/);
    assert.deepEqual(restoreKvState(again.load()).snapshot(), expectedState(100).snapshot());
    again.close();
  }),
);

Deno.test(
  "storage: snapshotDue also counts bytes",
  withDir((dir) => {
    const storage = ConsensusStorage.openInDir(dir, { ...NODE, snapshotEveryBytes: 2_000 });
    let phase = 0;
    while (!storage.snapshotDue()) fill(storage, ++phase);
    assert.ok(storage.stats().bytesSinceSnapshot >= 2_000);
    assert.ok(phase > 5 && phase < 100, `due after ${phase} phases`);
    storage.close();
  }),
);

Deno.test(
  "storage: readForSync serves from the log while it holds the phase, else the snapshot plus what follows",
  withDir((dir) => {
    const storage = ConsensusStorage.openInDir(dir, { ...NODE, retainDecisions: 10 });
    fill(storage, 50);
    storage.saveSnapshot(45, expectedState(45).snapshot());

    const fromLog = storage.readForSync(43, 1 << 20);
    assert.equal(fromLog.snapshot, undefined);
    assert.equal(fromLog.lastDecided, 50);
    assert.deepEqual(fromLog.decisions, decided(43, 50));

    const old = storage.readForSync(10, 1 << 20);
    assert.equal(old.snapshot?.phase, 45);
    assert.deepEqual(old.snapshot?.data, expectedState(45).snapshot());
    assert.deepEqual(old.decisions, decided(46, 50));

    assert.deepEqual(storage.readForSync(51, 1 << 20), { decisions: [], lastDecided: 50 });
    storage.close();
  }),
);

Deno.test(
  "storage: readForSync bounds each answer by maxBytes and pages through the log",
  withDir((dir) => {
    const storage = ConsensusStorage.openInDir(dir, NODE);
    fill(storage, 200);
    const oneBatch = new TextEncoder().encode(JSON.stringify(batchForPhase(1))).byteLength;
    const maxBytes = oneBatch * 8;
    const got: DecidedPhase<KvCommand>[] = [];
    let answers = 0;
    while (got.length < 200) {
      const answer = storage.readForSync(got.length + 1, maxBytes);
      assert.ok(answer.decisions.length > 0, "every answer makes progress");
      assert.ok(
        answer.decisions.length < 40,
        `an answer of ${answer.decisions.length} decisions ignores maxBytes`,
      );
      got.push(...answer.decisions);
      answers++;
    }
    assert.ok(answers > 5);
    assert.deepEqual(got, decided(1, 200));
    // A budget smaller than one batch still returns one.
    assert.equal(storage.readForSync(1, 1).decisions.length, 1);
    storage.close();
  }),
);

Deno.test(
  "storage: an installed snapshot replaces the log; the engine continues after it",
  withDir((dir) => {
    const storage = ConsensusStorage.openInDir(dir, NODE);
    fill(storage, 10);
    const snapshot = { phase: 100, data: expectedState(100).snapshot() };
    storage.commit({ installSnapshot: snapshot, decisions: decided(101, 102), record: recordForPhase(103) });
    assert.equal(storage.lastDecided, 102);
    assert.equal(storage.stats().firstLogged, 101);
    storage.close();

    const again = ConsensusStorage.openInDir(dir, NODE);
    const loaded = again.load();
    assert.equal(loaded.restored.lastDecided, 102);
    assert.equal(loaded.restored.record?.phase, 103);
    assert.equal(loaded.snapshot?.phase, 100);
    assert.deepEqual(restoreKvState(loaded).snapshot(), expectedState(102).snapshot());
    const sync = again.readForSync(5, 1 << 20);
    assert.equal(sync.snapshot?.phase, 100);
    assert.deepEqual(sync.decisions, decided(101, 102));
    again.close();
  }),
);

Deno.test(
  "storage: a data directory of another member or cluster is refused with a clear error",
  withDir((dir) => {
    ConsensusStorage.openInDir(dir, NODE).close();
    rejects(
      () => ConsensusStorage.openInDir(dir, { ...NODE, nodeId: "n2" }),
      "conflict",
      /belongs to member "n1" of the cluster \[n1, n2, n3\], but this node is member "n2"/,
    );
    rejects(
      () => ConsensusStorage.openInDir(dir, { ...NODE, members: ["n1", "n2", "n4"] }),
      "conflict",
      /cluster \[n1, n2, n3\].*cluster \[n1, n2, n4\]/,
    );
    // The same members in another order are the same cluster.
    ConsensusStorage.openInDir(dir, { ...NODE, members: ["n3", "n1", "n2"] }).close();

    const db = new DatabaseSync(`${dir}/consensus.sqlite`);
    db.exec("UPDATE meta SET value = '99' WHERE key = 'formatVersion'");
    db.close();
    rejects(() => ConsensusStorage.openInDir(dir, NODE), "conflict", /format version 99; this build reads/);
  }),
);

Deno.test(
  "storage: a second opener of the same data directory is refused while the first holds it",
  withDir((dir) => {
    const first = ConsensusStorage.openInDir(dir, NODE);
    try {
      rejects(() => ConsensusStorage.openInDir(dir, NODE), "conflict", /in use by another process/);
    } finally {
      first.close();
    }
    ConsensusStorage.openInDir(dir, NODE).close();
  }),
);

Deno.test("storage: bad options are refused", () => {
  rejects(
    () => ConsensusStorage.open(":memory:", { ...NODE, nodeId: "N 1" }),
    "bad_request",
    /valid node id/,
  );
  rejects(() => ConsensusStorage.open(":memory:", { ...NODE, members: ["n2"] }), "bad_request", /include/);
  rejects(
    () => ConsensusStorage.open(":memory:", { ...NODE, fsync: "sometimes" as "always" }),
    "bad_request",
    /fsync must be/,
  );
  rejects(
    () => ConsensusStorage.open(":memory:", { ...NODE, retainDecisions: -1 }),
    "bad_request",
    /retainDecisions/,
  );
});

// ---------------------------------------------------------------------------------------------------------------
// Crash test: a child commits steps and reports each committed phase; SIGKILL at a random moment must lose none.

const CHILD = new URL("./testdata/storage_crash_child.ts", import.meta.url).pathname;

interface ChildRun {
  readyLastDecided: number;
  reported: number[];
}

async function runChildUntilKilled(dir: string, dbPath: string, fsync: string, killAfterMs: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", `--allow-read=${dir}`, `--allow-write=${dir}`, CHILD, dbPath, fsync],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const run: ChildRun = { readyLastDecided: -1, reported: [] };
  const stderr = new Response(child.stderr).text();
  try {
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter());
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const deadline = setTimeout(() => child.kill("SIGKILL"), 60_000);
    try {
      for await (const line of lines) {
        if (line.startsWith("{")) {
          run.readyLastDecided = JSON.parse(line).lastDecided;
          killTimer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
        } else run.reported.push(Number(line));
      }
    } finally {
      clearTimeout(killTimer);
      clearTimeout(deadline);
    }
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL", `the child ended by itself: ${await stderr}`);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    await child.stdin.close().catch(() => {});
    await stderr;
  }
  return run;
}

function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const part of parts) if (part) controller.enqueue(part);
    },
    // A last line without its newline is not a report: the kill may have cut it.
  });
}

for (const fsync of ["never", "always"] as const) {
  Deno.test(
    `storage: SIGKILL at random moments loses no reported commit (fsync ${fsync})`,
    withDir(async (dir) => {
      const dbPath = `${dir}/consensus.sqlite`;
      let lastSeen = 0;
      for (let round = 1; round <= 3; round++) {
        const killAfterMs = 150 + Math.floor(Math.random() * 400);
        const run = await runChildUntilKilled(dir, dbPath, fsync, killAfterMs);
        const context = `round ${round}, killed after ${killAfterMs} ms`;
        assert.equal(run.readyLastDecided, lastSeen, `${context}: the child restarted at another phase`);
        assert.ok(run.reported.length > 0, `${context}: the child committed nothing before the kill`);
        const maxReported = run.reported.at(-1)!;

        const raw = new DatabaseSync(dbPath);
        assert.equal(
          (raw.prepare("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check,
          "ok",
        );
        raw.close();

        const storage = ConsensusStorage.open(dbPath, { ...CRASH_NODE, ...CRASH_LIMITS, fsync });
        try {
          const loaded = storage.load();
          const last = loaded.restored.lastDecided;
          assert.ok(
            last >= maxReported,
            `${context}: reported phase ${maxReported} but only ${last} is durable`,
          );
          assert.ok(
            last <= maxReported + 1,
            `${context}: ${last} decided, more than one past the last report`,
          );
          assert.deepEqual(loaded.restored.record, recordForPhase(last + 1), `${context}: record`);
          if (last >= CRASH_LIMITS.snapshotEveryDecisions) {
            assert.ok(loaded.snapshot, `${context}: no snapshot`);
          }
          assert.deepEqual(
            restoreKvState(loaded).snapshot(),
            expectedState(last).snapshot(),
            `${context}: state`,
          );
          const stats = storage.stats();
          assert.ok(stats.firstLogged <= stats.snapshotPhase + 1, `${context}: log gap after the snapshot`);
          assert.ok(
            stats.logEntries >= Math.min(CRASH_LIMITS.retainDecisions, last),
            `${context}: tail too short`,
          );
          lastSeen = last;
        } finally {
          storage.close();
        }
      }
    }),
  );
}
