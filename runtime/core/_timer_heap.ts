/**
 * The binary min-heap both timer queues keep their entries in (deadline_timers.ts and the simulator's virtual
 * time in clock.ts): ordered by time, then by the order of scheduling, so equal times run in that order.
 */

export interface TimedEntry {
  readonly atMs: number;
  readonly seq: number;
}

/** Adds `entry` to `heap`. O(log n). */
export function heapPush<E extends TimedEntry>(heap: E[], entry: E): void {
  let i = heap.length;
  heap.push(entry);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(entry, heap[parent])) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = entry;
}

/** Removes the earliest entry of `heap` (heap[0]). O(log n). */
export function heapPop<E extends TimedEntry>(heap: E[]): void {
  const last = heap.pop()!;
  if (heap.length === 0) return;
  let i = 0;
  const n = heap.length;
  while (true) {
    const left = 2 * i + 1;
    if (left >= n) break;
    const right = left + 1;
    const child = right < n && before(heap[right], heap[left]) ? right : left;
    if (!before(heap[child], last)) break;
    heap[i] = heap[child];
    i = child;
  }
  heap[i] = last;
}

function before(a: TimedEntry, b: TimedEntry): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}
