/** Durable state machines (filled in below the scheduler). */

import type { JsonValue, MachineInstance } from "../model/mod.ts";

export interface StateMachines {
  machines(group?: string): Array<{ group: string; machine: string; definedBy: string; instances: number }>;
  list(group: string, machine: string, limit: number): MachineInstance[];
  get(group: string, machine: string, id: string): Promise<MachineInstance | undefined>;
  send(group: string, machine: string, id: string, event: unknown, data: unknown, from: string): Promise<MachineInstance>;
}

export type { JsonValue };
