/**
 * `subscriptions` of a slice: consumer groups of pub/sub topics of its group that deliver to its methods
 * (runtime/infra-host/pubsub_service.ts creates them when the slice is deployed). Checked by defineSlice and
 * by the manifest check, each problem naming its path. Free of bare specifiers.
 */

export interface SubscriptionDeclaration {
  /** A topic of the slice's group. */
  topic: string;
  /** The consumer group: each group gets every message. */
  group: string;
  /** The method of this slice that receives each message. */
  method: string;
  /** Failed deliveries before a message goes to `{topic}.dlq` (default 5, 1-100). */
  maxAttempts?: number;
  /** Where a new group starts: "latest" (default) or "earliest". */
  from?: "earliest" | "latest";
}

interface Problem {
  path: string;
  message: string;
}

/** Subscriptions one slice declares at most. */
export const MAX_DECLARED_SUBSCRIPTIONS = 32;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$/;
const FIELDS = ["topic", "group", "method", "maxAttempts", "from"];

export function subscriptionsProblems(
  value: unknown,
  path: string,
  methods?: ReadonlySet<string>,
  requires?: readonly string[],
): { problems: Problem[]; subscriptions: SubscriptionDeclaration[] } {
  const problems: Problem[] = [];
  const subscriptions: SubscriptionDeclaration[] = [];
  if (!Array.isArray(value)) {
    return {
      problems: [{
        path,
        message: 'must be a list like [{ topic: "orders", group: "billing", method: "onOrder" }]',
      }],
      subscriptions,
    };
  }
  if (value.length > MAX_DECLARED_SUBSCRIPTIONS) {
    problems.push({ path, message: `declares more than ${MAX_DECLARED_SUBSCRIPTIONS} subscriptions` });
  }
  if (value.length > 0 && requires && !requires.includes("pubsub")) {
    problems.push({ path, message: 'need "pubsub" in requires' });
  }
  const seen = new Set<string>();
  value.forEach((entry, i) => {
    const at = `${path}[${i}]`;
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      problems.push({
        path: at,
        message: 'must be { topic: "orders", group: "billing", method: "onOrder" }',
      });
      return;
    }
    const s = entry as Record<string, unknown>;
    for (const field of Object.keys(s)) {
      if (!FIELDS.includes(field)) {
        problems.push({
          path: `${at}.${field}`,
          message: `is not a subscription field (${FIELDS.join(", ")})`,
        });
      }
    }
    for (const field of ["topic", "group"] as const) {
      if (typeof s[field] !== "string" || !NAME.test(s[field] as string)) {
        problems.push({ path: `${at}.${field}`, message: "must be 1-60 letters, digits, '.', '_' or '-'" });
      }
    }
    if (typeof s.method !== "string" || (methods && !methods.has(s.method))) {
      problems.push({
        path: `${at}.method`,
        message: `must name a method of this slice${methods ? ` (${[...methods].join(", ")})` : ""}`,
      });
    }
    if (
      s.maxAttempts !== undefined &&
      (typeof s.maxAttempts !== "number" || !Number.isInteger(s.maxAttempts) || s.maxAttempts < 1 ||
        s.maxAttempts > 100)
    ) {
      problems.push({ path: `${at}.maxAttempts`, message: "must be an integer from 1 to 100" });
    }
    if (s.from !== undefined && s.from !== "earliest" && s.from !== "latest") {
      problems.push({ path: `${at}.from`, message: 'must be "earliest" or "latest"' });
    }
    const key = `${s.topic}/${s.group}`;
    if (seen.has(key)) {
      problems.push({ path: at, message: `subscribes group ${s.group} to topic ${s.topic} twice` });
    }
    seen.add(key);
    subscriptions.push({
      topic: s.topic as string,
      group: s.group as string,
      method: s.method as string,
      ...(s.maxAttempts === undefined ? {} : { maxAttempts: s.maxAttempts as number }),
      ...(s.from === undefined ? {} : { from: s.from as "earliest" | "latest" }),
    });
  });
  return { problems, subscriptions };
}
