/**
 * `ctx.infra.rateLimit(name)`: a cluster-wide named rate limit (token bucket) defined by an operator with
 * `aether ratelimit set name --rate 100/s`. The node answers from its own share of the limit, so a permit
 * costs no consensus round; the leader moves shares between nodes by their demand (runtime/infra-host).
 *
 * This file must stay free of bare specifiers (the child process runs without a config file).
 */

import type { CallOptions } from "./_types.ts";

export interface RateLimitClient {
  /** Takes `permits` (default 1) if the limit has them now; false when it does not (never waits). */
  tryAcquire(permits?: number, options?: CallOptions): Promise<boolean>;
}

export interface RateLimitClients {
  rateLimit(name: string): RateLimitClient;
}

type Send = (
  service: string,
  method: string,
  payload: { name: string; permits: number },
  options?: CallOptions,
) => Promise<unknown>;

/** What was given, with its type when it is not a number (`"3"` reads as 3 otherwise). */
function describePermits(permits: unknown): string {
  if (typeof permits === "number" || typeof permits === "bigint") return String(permits);
  if (permits === null) return "null";
  const shown = typeof permits === "string" ? JSON.stringify(permits).slice(0, 40) : undefined;
  return shown === undefined ? `a value of type ${typeof permits}` : `${shown} (a string)`;
}

export function rateLimitClients(send: Send): RateLimitClients {
  return {
    rateLimit(name: string): RateLimitClient {
      if (typeof name !== "string" || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name)) {
        throw new TypeError(
          `ctx.infra.rateLimit(name): the name must be 1-64 of a-z, 0-9, '.', '_' or '-', got ${
            JSON.stringify(name)
          }`,
        );
      }
      return {
        tryAcquire: async (permits = 1, options) => {
          if (!Number.isInteger(permits) || permits < 1) {
            throw new TypeError(
              `rateLimit("${name}").tryAcquire(permits): a positive integer, got ${describePermits(permits)}`,
            );
          }
          const timeout = options?.timeoutMs === undefined ? undefined : { timeoutMs: options.timeoutMs };
          return (await send("ratelimit", "tryAcquire", { name, permits }, timeout)) === true;
        },
      };
    },
  };
}
