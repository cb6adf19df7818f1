/**
 * The slice author's workflow through the CLI, with the permissions of `deno task cli`: `slice init`,
 * `slice build`, then `artifact push|list|versions|info|delete` against a real node.
 */

import { equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { TestCluster } from "../_support/cluster.ts";
import { CLI_TASK_PERMISSIONS, runCli } from "../_support/cli.ts";

const FIXTURE = fileURLToPath(new URL("./fixtures/repo_greeter.ts", import.meta.url));

const cli = (args: string[], cwd?: string) => runCli(args, { cwd, permissions: CLI_TASK_PERMISSIONS });

Deno.test("CLI: slice init scaffolds a project that slice build turns into a bundle and manifest", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aether-cli-init-" });
  try {
    const init = await cli(["slice", "init", "hello", "--group", "org.example.cli"], dir);
    equal(init.code, 0, init.stderr);
    match(init.stdout, /created a slice project in .*hello/);
    for (const file of ["slice.ts", "slice_test.ts", "deno.json"]) {
      ok((await Deno.stat(`${dir}/hello/${file}`)).isFile, file);
    }
    const again = await cli(["slice", "init", "hello", "--group", "org.example.cli"], dir);
    equal(again.code, 1);
    match(again.stderr, /already has slice.ts, slice_test.ts, deno.json.*nothing was written/);

    const build = await cli(["--json", "slice", "build", `${dir}/hello/slice.ts`]);
    equal(build.code, 0, build.stderr);
    const result = JSON.parse(build.stdout);
    equal(result.coordinates, "org.example.cli:hello:0.1.0");
    equal(result.bundle, `${dir}/hello/dist/hello-0.1.0.js`);
    equal(result.manifest, `${dir}/hello/dist/hello-0.1.0.manifest.json`);
    const manifest = JSON.parse(await Deno.readTextFile(result.manifest));
    equal(manifest.sha256, result.sha256);
    equal((await Deno.readFile(result.bundle)).length, result.sizeBytes);

    const missing = await cli(["slice", "build", `${dir}/nope.ts`]);
    equal(missing.code, 1);
    match(missing.stderr, /slice build: entry file .*nope.ts does not exist/);
    const usage = await cli(["slice", "build"]);
    equal(usage.code, 2);
    match(usage.stderr, /slice build: expected <entry.ts>/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: build a slice, push it, list, versions, info, push again, delete", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aether-cli-artifact-" });
  const cluster = await TestCluster.start(1);
  try {
    await cluster.waitForLeader();
    const connect = [
      "--connect",
      cluster.nodes[0].apiUrl.replace("http://", ""),
      "--token",
      cluster.nodes[0].options.token!,
    ];

    const build = await cli(["slice", "build", FIXTURE, "--out", `${dir}/dist`]);
    equal(build.code, 0, build.stderr);
    match(build.stdout, /built\s+org\.example\.repo:greeter:1\.0\.0/);
    const sha = /sha256\s+([0-9a-f]{64})/.exec(build.stdout)![1];
    match(build.stdout, /bundle\s+.*greeter-1\.0\.0\.js/);
    match(build.stdout, /manifest\s+.*greeter-1\.0\.0\.manifest\.json/);

    const push = await cli([...connect, "artifact", "push", `${dir}/dist`]);
    equal(push.code, 0, push.stderr);
    match(
      push.stdout,
      new RegExp(`published org.example.repo:greeter:1.0.0 \\(.*, sha256 ${sha.slice(0, 12)}\\) on n1`),
    );
    const again = await cli([...connect, "artifact", "push", `${dir}/dist/greeter-1.0.0.manifest.json`]);
    equal(again.code, 0, again.stderr);
    match(again.stdout, /already published with the same content; nothing changed/);

    const list = await cli([...connect, "artifact", "list"]);
    equal(list.code, 0, list.stderr);
    match(list.stdout, /ARTIFACT\s+SIZE\s+SHA256\s+HOLDERS\s+PUSHED/);
    match(
      list.stdout,
      new RegExp(`org.example.repo:greeter:1.0.0\\s+[\\d.]+ KiB\\s+${sha.slice(0, 12)}\\s+n1`),
    );
    const listed = JSON.parse((await cli([...connect, "--json", "artifact", "list"])).stdout);
    equal(listed[0].sha256, sha);

    const versions = await cli([...connect, "artifact", "versions", "org.example.repo:greeter"]);
    equal(versions.stdout.trim(), "1.0.0");
    const info = await cli([...connect, "artifact", "info", "org.example.repo:greeter:1.0.0"]);
    equal(info.code, 0, info.stderr);
    match(info.stdout, new RegExp(`sha256\\s+${sha}`));
    match(info.stdout, /methods\s+greet/);
    match(info.stdout, /routes\s+POST \/greeter\/greet/);
    match(info.stdout, /holders\s+n1/);

    // A bundle changed after the build is caught before anything is sent.
    const bundlePath = `${dir}/dist/greeter-1.0.0.js`;
    await Deno.writeTextFile(bundlePath, "// tampered\n", { append: true });
    const tampered = await cli([...connect, "artifact", "push", `${dir}/dist`]);
    equal(tampered.code, 1);
    match(tampered.stderr, /does not match its manifest/);
    const nothing = await cli([...connect, "artifact", "push", `${dir}/nowhere`]);
    equal(nothing.code, 2);
    match(nothing.stderr, /does not exist/);

    const deleted = await cli([...connect, "artifact", "delete", "org.example.repo:greeter:1.0.0"]);
    equal(deleted.code, 0, deleted.stderr);
    equal(deleted.stdout.trim(), "deleted org.example.repo:greeter:1.0.0");
    const gone = await cli([...connect, "artifact", "info", "org.example.repo:greeter:1.0.0"]);
    equal(gone.code, 1);
    match(gone.stderr, /404 not found: artifact org.example.repo:greeter:1.0.0 is not published/);
    const empty = await cli([...connect, "artifact", "versions", "org.example.repo:greeter"]);
    match(empty.stdout, /no published versions of org.example.repo:greeter/);
  } finally {
    await cluster.close();
    await Deno.remove(dir, { recursive: true });
  }
});
