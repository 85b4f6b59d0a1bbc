// A tiny served model for the server tests: a seeded TINY_LLAMA with the tiny byte-level tokenizer (plus the DeepSeek
// FIM tokens and a one-token canned tool call as added tokens), written as a Hugging Face folder, served by the real
// engine (worker thread) behind a FathomServer on a free port.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as F from "../src/index.js";
import { ServeEngine } from "../src/serve/engine.js";
import { FathomServer, type ServerOptions } from "../src/serve/server.js";
import { Tokenizer } from "../src/tokenizers/tokenizer.js";
import { FIM_BEGIN, FIM_END, FIM_HOLE } from "../src/tokenizers/fim.js";
import { TOOL_CALLS_BEGIN, TOOL_CALLS_END, TOOL_CALL_BEGIN, TOOL_CALL_END, TOOL_SEP } from "../src/serve/tool_calls.js";
import { TINY_LLAMA, tinyTokenizer } from "./fixtures.js";

/** One added token whose text is a whole DeepSeek tool-call block (a model can be forced to write it with logit_bias). */
export const CANNED_TOOL_CALL = `${TOOL_CALLS_BEGIN}${TOOL_CALL_BEGIN}function${TOOL_SEP}get_weather\n\`\`\`json\n{"city": "Paris"}\n\`\`\`${TOOL_CALL_END}${TOOL_CALLS_END}`;

export interface TinyServed {
  dir: string;
  tok: Tokenizer;
  model: F.CausalLM;
  engine: ServeEngine;
  server: FathomServer;
  url: string;
  /** Token ids of the added tokens. */
  ids: { fimBegin: number; fimHole: number; fimEnd: number; toolCall: number; eos: number };
  close(): Promise<void>;
}

/** Writes the tiny model folder; returns its path. */
export function writeTinyModel(overrides: Record<string, unknown> = {}): { dir: string; tok: Tokenizer; model: F.CausalLM } {
  const dir = mkdtempSync(join(tmpdir(), "fathom-serve-"));
  const { tokenizer, config } = tinyTokenizer(288);
  // Four added tokens after the 288: the FIM markers and the canned tool call.
  [FIM_BEGIN, FIM_HOLE, FIM_END, CANNED_TOOL_CALL].forEach((content, i) => {
    (tokenizer.added_tokens as object[]).push({ id: 288 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false });
  });
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(config));
  const tok = Tokenizer.fromPretrained(dir);
  const model = F.randomModel({ ...TINY_LLAMA, vocab_size: 292, max_position_embeddings: 1024, ...overrides }, { seed: 11, init: "scaled" });
  model.savePretrained(dir);
  return { dir, tok, model };
}

/** `config` overrides fields of the model's config.json (e.g. a larger model that decodes slower). */
export async function startTiny(o: Partial<ServerOptions> & { maxBatch?: number; maxQueue?: number; ctx?: number; config?: Record<string, unknown> } = {}): Promise<TinyServed> {
  const { dir, tok, model } = writeTinyModel(o.config);
  const engine = await ServeEngine.start({ model: dir, maxBatch: o.maxBatch ?? 4, maxQueue: o.maxQueue ?? 64, ctx: o.ctx ?? 1024, threads: 1 });
  const server = new FathomServer({ engine, tokenizer: tok, modelId: "tiny", ...o });
  const url = await server.listen(0, "127.0.0.1");
  const id = (t: string) => tok.tokenToId(t)!;
  return {
    dir, tok, model, engine, server, url,
    ids: { fimBegin: id(FIM_BEGIN), fimHole: id(FIM_HOLE), fimEnd: id(FIM_END), toolCall: id(CANNED_TOOL_CALL), eos: tok.eosTokenId! },
    async close() { await server.close(); await engine.close(); rmSync(dir, { recursive: true, force: true }); },
  };
}

/** Reads /metrics and returns one sample's value. */
export async function metric(url: string, name: string, headers: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers })).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " ") || l.startsWith(name + "{"));
  if (!line) throw new Error(`metric ${name} not found`);
  return Number(line.slice(line.lastIndexOf(" ") + 1));
}
