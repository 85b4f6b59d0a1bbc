// The worker thread of the serve engine: loads the model (Hugging Face folder or GGUF) and runs the scheduler's
// decode loop, posting each step's events and the latest stats to the main thread (engine.ts). Messages from the main
// thread (submit, cancel, embed, close) are handled between steps. Nothing here may take the process down: a failing
// step ends its sequences with "error"; an unexpected failure ends every sequence with "error".
import { parentPort, workerData } from "node:worker_threads";
import { basename } from "node:path";
import { AutoModelForCausalLM } from "../io/auto.js";
import { loadNative } from "../core/backend/native/binding.js";
import { Scheduler } from "./scheduler.js";
import { EngineBusyError, type EngineEvent, type EngineInfo } from "./protocol.js";
import type { EngineOptions, MainToWorker, WorkerToMain } from "./engine.js";

const port = parentPort!;
const o = workerData as EngineOptions;
const post = (m: WorkerToMain) => port.postMessage(m);
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

let events: EngineEvent[] = [], started: string[] = [];
let sched!: Scheduler;
let loaded = false;
try {
  if (o.threads) loadNative()?.setThreads(o.threads);
  const model = AutoModelForCausalLM.fromPretrained(o.model, o.dtype ? { dtype: o.dtype } : {});
  sched = new Scheduler(model, {
    maxBatch: o.maxBatch, maxQueue: o.maxQueue, ctx: o.ctx, kvDtype: o.kvDtype, prefillChunk: o.prefillChunk,
    onStart: (id) => started.push(id),
  });
  const mi = model.info();
  const info: EngineInfo = { modelId: basename(o.model.replace(/[\\/]+$/, ""), ".gguf"), modelType: mi.model_type, contextLength: sched.ctx,
    hiddenSize: mi.hidden_size, vocabSize: mi.vocab_size };
  post({ type: "ready", info });
  loaded = true;
} catch (e) {
  post({ type: "fatal", message: message(e) });
  port.close();                                               // nothing else keeps the thread alive: it ends
}

function flush(): void {
  if (!events.length && !started.length) { post({ type: "stats", stats: sched.stats() }); return; }
  post({ type: "events", events, started, stats: sched.stats() });
  events = []; started = [];
}

/** Embedding requests in arrival order; one forward pass of the first runs after each decode step. */
const embeds: { rid: number; steps: ReturnType<Scheduler["embedSteps"]> }[] = [];
function embedStep(): void {
  const job = embeds[0];
  try {
    const r = job.steps.next();
    if (r.done) { embeds.shift(); post({ type: "embedded", rid: job.rid, vectors: r.value }); }
  } catch (e) { embeds.shift(); post({ type: "embedded", rid: job.rid, error: message(e) }); }
}

let closing = false;
let wake: (() => void) | null = null;

function handle(m: MainToWorker): void {
  switch (m.type) {
    case "submit":
      try { sched.submit(m.req, (e) => events.push(e), m.submittedAt); }
      catch (e) {
        const busy = e instanceof EngineBusyError;
        events.push({ type: "done", id: m.req.id, reason: "error", promptTokens: m.req.promptIds.length, completionTokens: 0, cachedTokens: 0,
          error: busy ? e.message : `engine: ${message(e)}` });
      }
      break;
    case "cancel": sched.cancel(m.id); break;
    case "embed": embeds.push({ rid: m.rid, steps: sched.embedSteps(m.inputs) }); break;
    case "close": closing = true; sched.cancelAll("cancelled"); break;
  }
}

if (loaded) port.on("message", (m: MainToWorker) => {
  try { handle(m); } catch (e) { sched.cancelAll("error", `engine: ${message(e)}`); }
  flush();
  const w = wake; wake = null; w?.();
});

async function loop(): Promise<void> {
  while (!closing) {
    const work = sched.hasWork();
    if (work || embeds.length) {
      if (work) try { sched.step(); } catch (e) { sched.cancelAll("error", `engine: ${message(e)}`); }
      if (embeds.length) embedStep();
      flush();
      await new Promise<void>((r) => setImmediate(r));       // let submit/cancel/embed messages in between steps
    } else await new Promise<void>((r) => { wake = r; });
  }
  flush();
  port.close();
}
if (loaded) void loop();
