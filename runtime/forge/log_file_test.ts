import { deepEqual, equal, match } from "node:assert/strict";
import { RotatingLogFile } from "./log_file.ts";

Deno.test("a log file is rotated by size and only `keep` old files are kept", async () => {
  const dir = await Deno.makeTempDir({ prefix: "forge-log-" });
  try {
    const log = new RotatingLogFile(`${dir}/n1.log`, 100, 2);
    for (let i = 0; i < 12; i++) log.write(`line ${String(i).padStart(2, "0")} ${"x".repeat(30)}\n`);
    log.close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    deepEqual(names, ["n1.log", "n1.log.1", "n1.log.2"]);
    for (const name of names) equal(Deno.statSync(`${dir}/${name}`).size <= 100, true, name);
    match(Deno.readTextFileSync(`${dir}/n1.log`), /line 11/);
    match(Deno.readTextFileSync(`${dir}/n1.log.1`), /line 0[89]/);
    match(log.tail(2), /line 10 x+\nline 11 x+$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a log file continues where the previous run stopped and counts its size", async () => {
  const dir = await Deno.makeTempDir({ prefix: "forge-log-" });
  try {
    await Deno.writeTextFile(`${dir}/n1.log`, "x".repeat(90));
    const log = new RotatingLogFile(`${dir}/n1.log`, 100, 3);
    log.write("y".repeat(20));
    log.close();
    equal(Deno.readTextFileSync(`${dir}/n1.log.1`), "x".repeat(90));
    equal(Deno.readTextFileSync(`${dir}/n1.log`), "y".repeat(20));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
