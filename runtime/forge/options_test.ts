import { deepEqual, equal, throws } from "node:assert/strict";
import { didYouMean, parseForgeOptions, UsageError } from "./options.ts";

const examples = await Deno.makeTempDir({ prefix: "forge-examples-" });
await Deno.mkdir(`${examples}/shop`);
await Deno.writeTextFile(`${examples}/shop/blueprint.toml`, 'id = "a:b:1.0.0"\n');
await Deno.mkdir(`${examples}/not-an-example`);
globalThis.addEventListener("unload", () => Deno.removeSync(examples, { recursive: true }));

const parse = (...args: string[]) => parseForgeOptions(args, examples);
const usage = (args: string[], pattern: RegExp) =>
  throws(() => parse(...args), (e) => e instanceof UsageError && pattern.test(e.message));

Deno.test("defaults: 3 nodes, restart always, preferred ports; the default example must exist", () => {
  usage([], /"ecommerce" is not an example.*available: shop/);
  deepEqual(parse("--example", "shop"), {
    nodes: 3,
    clean: false,
    example: "shop",
    restart: "always",
    freePorts: false,
  });
});

Deno.test("every option is read", () => {
  deepEqual(parse("--nodes", "5", "--clean", "--no-example", "--restart", "never", "--free-ports"), {
    nodes: 5,
    clean: true,
    example: null,
    restart: "never",
    freePorts: true,
  });
});

Deno.test("--help gives null (the caller prints the usage)", () => {
  equal(parse("--help"), null);
  equal(parse("-h"), null);
});

Deno.test("bad options are refused with what was wrong, before anything starts", () => {
  usage(["--nodes", "2", "--no-example"], /--nodes: "2" is not 1, 3 or 5/);
  usage(["--nodes", "many", "--no-example"], /--nodes: "many"/);
  usage(["--restart", "sometimes", "--no-example"], /--restart: "sometimes" is not always or never/);
  usage(["--example", "nope"], /--example: "nope" is not an example .*available: shop$/);
  usage(["--example", "not-an-example"], /available: shop$/);
  usage(["--example", "shop", "--no-example"], /exclude each other/);
  usage(["--colour"], /--colour/);
  usage(["--nodes"], /--nodes/);
});

Deno.test("did-you-mean finds close names only", () => {
  equal(didYouMean("stauts", ["status", "stop", "kill"]), "status");
  equal(didYouMean("partion", ["partition", "isolate"]), "partition");
  equal(didYouMean("KILL", ["status", "kill"]), "kill");
  equal(didYouMean("deploy", ["status", "stop", "kill", "heal"]), null);
  equal(didYouMean("hael", ["heal"]), "heal");
});
