// Step arenas: the storage of one repeated inference step (a decode step) reused from step to step, so a warm decode
// loop allocates no typed arrays. While `arena.run(fn)` runs, every `allocate()` (all op outputs go through it) takes
// a buffer from the arena, keyed by element type and length; the next `run` hands the same buffers out again, zeroed
// as a new typed array would be. So the rule for callers is: what a step returns (its logits) is valid until the next
// step of the same arena starts, and must be read or copied before then.
//
// Storage that outlives a step (a KV cache's concatenated entries, tables and packed weights made lazily on first use)
// must be made inside `outsideArena(fn)`. Buffers of a size no step has asked for in the last MAX_IDLE steps are
// dropped, so a prefill's large activations do not stay pinned; sizes that come and go (MoE experts' token counts in
// a ragged batch) stay pooled meanwhile. Inference only: run() refuses to start with grad on,
// since a recorded graph would keep step buffers alive past the step.
import { isGradEnabled } from "./autograd.js";
import { FathomError } from "./errors.js";
import type { TypedArray } from "./dtype.js";

interface Pool { bufs: TypedArray[]; used: number; gen: number }

const MAX_IDLE = 8;

let active: StepArena | null = null;
let created = 0;

/** Typed arrays made by allocate() so far in this process (tests count them per step). */
export function allocationCount(): number { return created; }

export class StepArena {
  private pools = new Map<string, Map<number, Pool>>();
  private gen = 0;

  /** Runs one step with its allocations served from this arena (the previous step's buffers are reused). */
  run<T>(fn: () => T): T {
    if (isGradEnabled()) throw new FathomError("arena", "a step arena runs under noGrad (inference only)");
    this.trim();
    this.gen++;
    const prev = active;
    active = this;
    try { return fn(); } finally { active = prev; }
  }

  /** Bytes the arena holds. */
  bytes(): number {
    let b = 0;
    for (const byLen of this.pools.values()) for (const p of byLen.values()) for (const a of p.bufs) b += a.byteLength;
    return b;
  }

  /** Drops the buffers of sizes the last MAX_IDLE steps did not ask for. */
  private trim(): void {
    for (const [k, byLen] of this.pools) {
      for (const [n, p] of byLen) if (this.gen - p.gen >= MAX_IDLE) byLen.delete(n);
      if (!byLen.size) this.pools.delete(k);
    }
  }

  take(kind: string, n: number, make: new (n: number) => TypedArray): TypedArray {
    let byLen = this.pools.get(kind);
    if (!byLen) this.pools.set(kind, (byLen = new Map()));
    let p = byLen.get(n);
    if (!p) byLen.set(n, (p = { bufs: [], used: 0, gen: this.gen }));
    if (p.gen !== this.gen) { p.gen = this.gen; p.used = 0; }
    if (p.used < p.bufs.length) {
      const b = p.bufs[p.used++];
      b.fill(0);
      return b;
    }
    const b = new make(n);
    created++;
    p.bufs.push(b);
    p.used++;
    return b;
  }
}

/** Storage for allocate(): from the running step's arena, if any. */
export function arenaAlloc(kind: string, n: number, make: new (n: number) => TypedArray): TypedArray {
  if (active) return active.take(kind, n, make);
  created++;
  return new make(n);
}

/** Whether allocations are being served by a step arena now. */
export function inArena(): boolean { return active !== null; }

/** Runs fn with no arena: what it allocates may outlive the step (caches, lazily built tables). */
export function outsideArena<T>(fn: () => T): T {
  const prev = active;
  active = null;
  try { return fn(); } finally { active = prev; }
}
