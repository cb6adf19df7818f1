import { AetherError } from "../core/mod.ts";

/** Operators may write only under `app/`; every other prefix belongs to the runtime. */
export function operatorWriteProblem(key: string): void {
  if (!key.startsWith("app/")) {
    throw new AetherError(
      "forbidden",
      `key "${key}" is outside the operator namespace: operators may write only keys under "app/"; ` +
        `other prefixes belong to the runtime`,
      { key },
    );
  }
}
