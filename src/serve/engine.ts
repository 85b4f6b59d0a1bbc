// The serve engine on the main thread: starts the worker (engine_worker.ts) that owns the model and the decode loop,
// forwards submit/cancel/embed to it and routes its events to each sequence's callback. stats() returns the latest
// stats the worker posted (it posts after every step), so it costs nothing.
import { Worker } from "node:worker_threads";
import { FathomError } from "../core/errors.js";
import type { DType } from "../core/dtype.js";
import type { KVCacheDType } from "../nn/attention.js";
import { EngineBusyError, type Engine, type EngineEvent, type EngineInfo, type EngineStats, type GenerateRequest } from "./protocol.js";

export interface EngineOptions {
  /** A Hugging Face model folder or a .gguf file. */
  model: string;
  /** Convert floating weights to this dtype on load. */
  dtype?: DType;
  /** Sequences decoding at once (default 8). */
  maxBatch?: number;
  /** Sequences waiting for a slot at most (default 64); submit throws EngineBusyError beyond. */
  maxQueue?: number;
  /** Context length per slot (default the model's max positions capped at 4096). */
  ctx?: number;
  kvDtype?: KVCacheDType;
  /** Threads for the native kernels (default FATHOM_THREADS or all cores). */
  threads?: number;
  /** Prompt tokens prefilled per step at most (default 512). */
  prefillChunk?: number;
}

/** Messages between the main thread and the worker. */
export type MainToWorker =
  | { type: "submit"; req: GenerateRequest; submittedAt: number }
  | { type: "cancel"; id: string }
  | { type: "embed"; rid: number; inputs: number[][] }
  | { type: "close" };
export type WorkerToMain =
  | { type: "ready"; info: EngineInfo }
  | { type: "fatal"; message: string }
  | { type: "events"; events: EngineEvent[]; started: string[]; stats: EngineStats }
  | { type: "stats"; stats: EngineStats }
  | { type: "embedded"; rid: number; vectors?: Float32Array[]; error?: string };

/**
 * Starts the worker script next to this module: the .js file in the build; under tsx (tests, dev) the .ts file,
 * through a small bootstrap that registers tsx in the worker first (loader flags in execArgv do not reach workers).
 */
function spawnWorker(workerData: unknown): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL("./engine_worker.js", import.meta.url), { workerData });
  const url = new URL("./engine_worker.ts", import.meta.url).href, api = import.meta.resolve("tsx/esm/api");
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(url)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

/** The Engine of `fathom serve`: the model runs in a worker thread. Create it with `ServeEngine.start(options)`. */
export class ServeEngine implements Engine {
  private readonly handlers = new Map<string, (e: EngineEvent) => void>();
  private readonly queued = new Set<string>();
  private readonly embeds = new Map<number, { resolve: (v: Float32Array[]) => void; reject: (e: Error) => void }>();
  private nextRid = 0;
  private latest: EngineStats;
  private closed = false;
  private failed: string | null = null;
  get failure(): string | null { return this.failed; }
  private readonly exited: Promise<void>;

  private constructor(private readonly worker: Worker, readonly info: EngineInfo, private readonly maxQueue: number, maxBatch: number) {
    this.latest = { queueDepth: 0, active: 0, maxBatch, kvTokensUsed: 0, kvTokensCapacity: maxBatch * info.contextLength, prefixCacheHits: 0 };
    worker.on("message", (m: WorkerToMain) => this.onMessage(m));
    worker.on("error", (e) => this.fail(`engine worker failed: ${e.message}`));
    this.exited = new Promise((r) => worker.once("exit", () => { this.fail(this.closed ? "engine closed" : "engine worker exited"); r(); }));
  }

  /** Starts the worker and loads the model; resolves once it is ready, rejects with the loader's error. */
  static start(o: EngineOptions): Promise<ServeEngine> {
    const maxBatch = o.maxBatch ?? 8, maxQueue = o.maxQueue ?? 64;
    const worker = spawnWorker({ ...o, maxBatch, maxQueue });
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new FathomError("serve", `engine worker exited (code ${code}) before the model loaded`));
      const onError = (e: Error) => { worker.off("exit", onExit); reject(new FathomError("serve", `engine worker failed: ${e.message}`)); };
      worker.once("exit", onExit);
      worker.once("error", onError);
      worker.once("message", (m: WorkerToMain) => {
        worker.off("exit", onExit); worker.off("error", onError);
        if (m.type === "ready") resolve(new ServeEngine(worker, m.info, maxQueue, maxBatch));
        else { reject(new FathomError("serve", m.type === "fatal" ? m.message : `unexpected message '${m.type}' from the engine worker`)); void worker.terminate(); }
      });
    });
  }

  private onMessage(m: WorkerToMain): void {
    if (m.type === "events" || m.type === "stats") this.latest = m.stats;
    if (m.type === "events") {
      for (const id of m.started) this.queued.delete(id);
      for (const e of m.events) {
        const h = this.handlers.get(e.id);
        if (e.type === "done") { this.handlers.delete(e.id); this.queued.delete(e.id); }
        try { h?.(e); } catch { /* a throwing callback must not stop the others */ }
      }
    } else if (m.type === "embedded") {
      const p = this.embeds.get(m.rid);
      this.embeds.delete(m.rid);
      if (m.vectors) p?.resolve(m.vectors); else p?.reject(new FathomError("embed", m.error ?? "failed"));
    }
  }

  /** Ends every outstanding sequence and embedding request (the worker is gone). */
  private fail(msg: string): void {
    this.failed ??= msg;
    for (const [id, h] of this.handlers) {
      try { h({ type: "done", id, reason: this.closed ? "cancelled" : "error", promptTokens: 0, completionTokens: 0, cachedTokens: 0, error: msg }); } catch { /* ignore */ }
    }
    this.handlers.clear(); this.queued.clear();
    for (const p of this.embeds.values()) p.reject(new FathomError("serve", msg));
    this.embeds.clear();
  }

  private send(m: MainToWorker): void { this.worker.postMessage(m); }

  submit(req: GenerateRequest, onEvent: (e: EngineEvent) => void): void {
    if (this.failure || this.closed) throw new FathomError("serve", this.failure ?? "engine closed");
    if (this.handlers.has(req.id)) throw new FathomError("serve", `sequence id '${req.id}' is already in use`);
    // not yet started (as far as this thread knows) beyond the slots the worker last reported free = waiting
    const waiting = this.queued.size - Math.max(0, this.latest.maxBatch - this.latest.active);
    if (waiting >= this.maxQueue) throw new EngineBusyError(Math.max(0, waiting));
    this.handlers.set(req.id, onEvent);
    this.queued.add(req.id);
    this.send({ type: "submit", req, submittedAt: Date.now() });
  }

  cancel(id: string): void { if (this.handlers.has(id) && !this.failure) this.send({ type: "cancel", id }); }

  embed(inputs: number[][]): Promise<Float32Array[]> {
    if (this.failure || this.closed) return Promise.reject(new FathomError("serve", this.failure ?? "engine closed"));
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      this.embeds.set(rid, { resolve, reject });
      this.send({ type: "embed", rid, inputs });
    });
  }

  stats(): EngineStats { return { ...this.latest, queueDepth: this.queued.size }; }

  async close(): Promise<void> {
    if (!this.closed) { this.closed = true; if (!this.failure) this.send({ type: "close" }); }
    await this.exited;
  }
}

/** Starts an engine (see ServeEngine.start). */
export const startEngine = (o: EngineOptions): Promise<ServeEngine> => ServeEngine.start(o);
