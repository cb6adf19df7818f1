import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  DEFAULT_POLICY,
  grantPermissions,
  netAllowed,
  processPermissionFlags,
  type SandboxPolicy,
  validatePolicy,
  workerPermissions,
} from "./policy.ts";
import { childArgs } from "./_process_channel.ts";

const policy = (net: SandboxPolicy["net"], env: string[] = []): SandboxPolicy => ({
  ...DEFAULT_POLICY,
  net,
  env,
});

Deno.test("net: a bare host asks for every port; the policy decides entry by entry", () => {
  const allowed = ["api.example.com:443", "cache.internal", "[::1]:8080"];
  const cases: Array<[string, boolean]> = [
    ["api.example.com:443", true],
    ["API.example.com:443", true], // host names compare case-insensitively
    ["api.example.com:80", false],
    ["api.example.com", false], // every port is more than port 443
    ["cache.internal", true],
    ["cache.internal:6379", true],
    ["evil.example.com:443", false],
    ["[::1]:8080", true],
    ["[::1]:8081", false],
  ];
  for (const [requested, expected] of cases) {
    assertEquals(netAllowed(requested, allowed), expected, requested);
  }
  assertEquals(netAllowed("anything:1", "*"), true);
  assertEquals(netAllowed("anything:1", ["*"]), true);
  assertEquals(netAllowed("anything:1", []), false);
});

Deno.test("grant = request ∩ policy; what was refused is listed", () => {
  const grant = grantPermissions(
    { net: ["api.example.com:443", "evil.example.com"], env: ["API_KEY", "HOME"] },
    policy(["api.example.com"], ["API_KEY"]),
  );
  assertEquals(grant, {
    net: ["api.example.com:443"],
    env: ["API_KEY"],
    denied: ["net:evil.example.com", "env:HOME"],
  });
  assertEquals(workerPermissions(grant), {
    net: ["api.example.com:443"],
    env: ["API_KEY"],
    read: false,
    write: false,
    run: false,
    ffi: false,
    sys: false,
    import: false,
  });
  assertEquals(processPermissionFlags(grant), ["--allow-net=api.example.com:443", "--allow-env=API_KEY"]);
  const nothing = grantPermissions({ net: ["x:1"], env: [] }, DEFAULT_POLICY);
  assertEquals(workerPermissions(nothing).net, false);
  assertEquals(processPermissionFlags(nothing), []);
});

Deno.test("a sandbox child runs with the grant only: no config, npm, remote modules or prompts, and a heap limit", () => {
  const args = childArgs({ net: ["api.example.com:443"], env: [], denied: [] }, 192);
  assertEquals(args.slice(0, 8), [
    "run",
    "--quiet",
    "--no-config",
    "--no-lock",
    "--no-npm",
    "--no-remote",
    "--no-prompt",
    "--v8-flags=--max-old-space-size=192",
  ]);
  assertEquals(args.filter((a) => a.startsWith("--allow")), ["--allow-net=api.example.com:443"]);
  assertEquals(args.slice(-2), [String(192 * 1024 * 1024), "10"]);
});

Deno.test("policies from configuration are validated", () => {
  assertEquals(validatePolicy(DEFAULT_POLICY), DEFAULT_POLICY);
  throws(
    () => validatePolicy({ ...DEFAULT_POLICY, mode: "vm" as never }),
    /mode must be "worker" or "process"/,
  );
  throws(() => validatePolicy({ ...DEFAULT_POLICY, net: ["a,b"] }), /net entry "a,b"/);
  throws(() => validatePolicy({ ...DEFAULT_POLICY, env: ["A B"] }), /env must be a list/);
  throws(
    () => validatePolicy({ ...DEFAULT_POLICY, memoryLimitMb: 64 }),
    /memoryLimitMb must be an integer of at least 96/,
  );
});
