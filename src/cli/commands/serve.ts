// `fathom serve`: an OpenAI-compatible HTTP server (and a chat page at /) in front of the serve engine, which runs
// the model in a worker thread with continuous batching.
import { basename } from "node:path";
import { InvalidArgumentError, type Command } from "commander";
import type { DType } from "../../core/dtype.js";
import { ServeEngine } from "../../serve/engine.js";
import { FathomServer } from "../../serve/server.js";
import { int } from "../args.js";
import { loadTokenizer } from "./text.js";

interface ServeFlags {
  model: string; host: string; port: number; apiKey?: string; maxBatch: number; maxQueue: number; ctx?: number; timeout: number;
  cors?: string; maxBody: number; modelId?: string; dtype?: string; threads?: number;
}

/** --cors "*" or a comma-separated list of origins. */
export function parseCors(v: string): "*" | string[] {
  if (v.trim() === "*") return "*";
  const origins = v.split(",").map((s) => s.trim()).filter(Boolean);
  for (const o of origins) {
    let u: URL;
    try { u = new URL(o); } catch { throw new InvalidArgumentError(`'${o}' is not an origin (e.g. http://localhost:5173)`); }
    if (u.origin !== o) throw new InvalidArgumentError(`'${o}' is not an origin: write scheme://host[:port] with no path (${u.origin})`);
  }
  if (!origins.length) throw new InvalidArgumentError("--cors needs \"*\" or a comma-separated list of origins");
  return origins;
}

export function registerServe(program: Command): void {
  program.command("serve")
    .description("serve a model over an OpenAI-compatible HTTP API, with a chat page at /")
    .requiredOption("-m, --model <path>", "a Hugging Face folder or a .gguf file (with its tokenizer)")
    .option("--host <host>", "address to listen on (127.0.0.1: this machine only)", "127.0.0.1")
    .option("--port <n>", "port", int("--port", 0), 8080)
    .option("--api-key <key>", "require Authorization: Bearer <key> (default: $FATHOM_API_KEY if set)")
    .option("--max-batch <n>", "sequences decoded together (KV-cache slots)", int("--max-batch"), 8)
    .option("--max-queue <n>", "requests waiting for a slot before answering 429", int("--max-queue", 0), 64)
    .option("--ctx <n>", "context length per sequence (default: the model's, at most 4096)", int("--ctx", 16))
    .option("--timeout <s>", "seconds a generation may run", int("--timeout"), 600)
    .option("--cors <origins>", "allow cross-origin requests: \"*\" or comma-separated origins (default: off)")
    .option("--max-body <bytes>", "largest request body", int("--max-body", 1024), 4 << 20)
    .option("--model-id <name>", "the model name clients use (default: the folder or file name)")
    .option("--dtype <dtype>", "convert weights on load (f32, bf16, f16)")
    .option("--threads <n>", "compute threads (default: FATHOM_THREADS or all cores)", int("--threads"))
    .addHelpText("after", `
Examples:
  fathom serve -m ./deepseek-coder-1.3b-instruct
  fathom serve -m model.gguf --port 9000 --max-batch 16 --ctx 4096
  FATHOM_API_KEY=secret fathom serve -m ./model --host 0.0.0.0 --cors https://example.com
Then open http://127.0.0.1:8080/ or:
  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model": "deepseek-coder-1.3b-instruct", "messages": [{"role": "user", "content": "Hello"}]}'`)
    .action(async (o: ServeFlags) => {
      if (o.dtype && !["f32", "bf16", "f16"].includes(o.dtype)) throw new InvalidArgumentError("--dtype must be f32, bf16 or f16");
      const cors = o.cors !== undefined ? { origins: parseCors(o.cors) } : null;
      const apiKey = o.apiKey ?? (process.env.FATHOM_API_KEY || undefined);
      const tokenizer = loadTokenizer(o.model);
      const modelId = o.modelId ?? basename(o.model.replace(/[\\/]+$/, ""), ".gguf");
      process.stderr.write(`fathom serve: loading ${o.model} …\n`);
      const engine = await ServeEngine.start({ model: o.model, maxBatch: o.maxBatch, maxQueue: o.maxQueue, ctx: o.ctx, dtype: o.dtype as DType | undefined, threads: o.threads });
      const server = new FathomServer({ engine, tokenizer, modelId, apiKey, cors, maxBodyBytes: o.maxBody, requestTimeoutMs: o.timeout * 1000 });
      let url: string;
      try { url = await server.listen(o.port, o.host); } catch (e) { await engine.close(); throw new InvalidArgumentError(`cannot listen on ${o.host}:${o.port}: ${(e as Error).message}`); }
      const loopback = ["127.0.0.1", "::1", "localhost"].includes(o.host);
      process.stderr.write(`fathom serve: ${modelId} on ${url}  (chat page ${url}/, API ${url}/v1, context ${engine.info.contextLength}, batch ${o.maxBatch})\n`);
      if (!loopback && !apiKey) process.stderr.write("fathom serve: warning: listening beyond this machine without --api-key\n");
      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        process.stderr.write("fathom serve: stopping\n");
        await server.close();
        await engine.close();
      };
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
      await new Promise<void>((resolve) => server.http.once("close", () => resolve()));
    });
}
