// Text in, text out: `fathom generate` (token ids or text, every generation knob, streaming, chat template, FIM),
// `fathom tokenize` and the interactive `fathom chat`. Tokenizers come from the model folder (tokenizer.json) or from
// a GGUF file's tokenizer.ggml.* metadata.
import { createInterface } from "node:readline";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import { FathomError } from "../../core/errors.js";
import type { DType } from "../../core/dtype.js";
import { AutoModelForCausalLM } from "../../io/auto.js";
import { GGUFFile } from "../../io/gguf.js";
import { ggufToTokenizer } from "../../io/gguf_tokenizer.js";
import { Tokenizer } from "../../tokenizers/tokenizer.js";
import type { ChatMessage } from "../../tokenizers/chat_template.js";
import { buildFimPrompt, extractFimMiddle } from "../../tokenizers/fim.js";
import { generate, generateStream, GenerationSession, type GenerateOptions } from "../../generate/generate.js";
import type { CausalLM } from "../../models/decoder.js";
import { int, parseIds } from "../args.js";

/** The tokenizer that belongs to a model folder or GGUF file. */
export function loadTokenizer(path: string): Tokenizer {
  if (path.endsWith(".gguf")) {
    const { tokenizerJson, tokenizerConfig } = ggufToTokenizer(GGUFFile.open(path).metadata);
    return Tokenizer.fromJSON(tokenizerJson, tokenizerConfig);
  }
  if (!existsSync(join(path, "tokenizer.json"))) throw new FathomError("tokenizer", `${path}: missing tokenizer.json (pass --prompt-ids to generate from token ids)`);
  return Tokenizer.fromPretrained(path);
}

const num = (name: string, lo: number, hi = Infinity) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < lo || n > hi) throw new InvalidArgumentError(`${name} must be a number in [${lo}, ${hi === Infinity ? "∞" : hi}]`);
  return n;
};
const collect = (v: string, prev: string[] = []) => [...prev, v];

function logitBias(v: string): Record<number, number> {
  const out: Record<number, number> = {};
  for (const part of v.split(",")) {
    const m = /^\s*(\d+)\s*:\s*(-?[\d.]+(?:e-?\d+)?)\s*$/.exec(part);
    if (!m) throw new InvalidArgumentError(`'${part}' is not id:bias (e.g. --logit-bias 42:-100,7:2.5)`);
    out[Number(m[1])] = Number(m[2]);
  }
  return out;
}

/** The generation knobs as flags (shared by generate and chat). */
function addKnobs(cmd: Command): Command {
  return cmd
    .option("--max-new-tokens <n>", "tokens to generate (wins over --max-length)", int("--max-new-tokens"))
    .option("--max-length <n>", "prompt + new tokens", int("--max-length"))
    .option("--min-new-tokens <n>", "no EOS before this many new tokens", int("--min-new-tokens", 0))
    .option("--do-sample", "sample instead of greedy/beam search")
    .option("--temperature <t>", "sampling temperature (> 0)", num("--temperature", 0))
    .option("--top-k <k>", "keep the k most likely tokens (0 disables)", int("--top-k", 0))
    .option("--top-p <p>", "nucleus sampling mass in (0, 1]", num("--top-p", 0, 1))
    .option("--min-p <p>", "drop tokens below p × the top probability", num("--min-p", 0, 1))
    .option("--typical-p <p>", "locally typical sampling mass in (0, 1]", num("--typical-p", 0, 1))
    .option("--repetition-penalty <r>", "penalise tokens already present (> 0)", num("--repetition-penalty", 0))
    .option("--no-repeat-ngram-size <n>", "never repeat an n-gram", int("--no-repeat-ngram-size", 0))
    .option("--bad-words <text>", "text that must not be generated (repeatable)", collect)
    .option("--logit-bias <list>", "id:bias pairs, comma-separated", logitBias)
    .option("--num-return-sequences <n>", "sequences per prompt", int("--num-return-sequences"))
    .option("--num-beams <n>", "beam search width", int("--num-beams"))
    .option("--length-penalty <x>", "beam score = logprob / length^x", num("--length-penalty", -Infinity))
    .addOption(new Option("--early-stopping <mode>", "beam search stopping: true, false or never").choices(["true", "false", "never"]))
    .option("--eos-token-id <ids>", "end-of-sequence ids, comma-separated", parseIds)
    .option("--stop <text>", "stop string (repeatable)", collect)
    .option("--seed <n>", "seed for sampling", int("--seed", 0))
    .option("--dtype <dtype>", "convert weights on load (f32, bf16, f16)");
}

interface KnobFlags {
  maxNewTokens?: number; maxLength?: number; minNewTokens?: number; doSample?: boolean; temperature?: number; topK?: number; topP?: number;
  minP?: number; typicalP?: number; repetitionPenalty?: number; noRepeatNgramSize?: number; badWords?: string[]; logitBias?: Record<number, number>;
  numReturnSequences?: number; numBeams?: number; lengthPenalty?: number; earlyStopping?: string; eosTokenId?: number[]; stop?: string[];
  seed?: number; dtype?: string;
}

function knobs(o: KnobFlags, tok: Tokenizer | null): GenerateOptions {
  const g: GenerateOptions = {
    max_new_tokens: o.maxNewTokens, max_length: o.maxLength, min_new_tokens: o.minNewTokens, do_sample: o.doSample, temperature: o.temperature,
    top_k: o.topK, top_p: o.topP, min_p: o.minP, typical_p: o.typicalP, repetition_penalty: o.repetitionPenalty,
    no_repeat_ngram_size: o.noRepeatNgramSize, logit_bias: o.logitBias, num_return_sequences: o.numReturnSequences, num_beams: o.numBeams,
    length_penalty: o.lengthPenalty, early_stopping: o.earlyStopping === undefined ? undefined : o.earlyStopping === "never" ? "never" : o.earlyStopping === "true",
    eos_token_id: o.eosTokenId, stop_strings: o.stop, seed: o.seed, tokenizer: tok ?? undefined,
  };
  if (o.badWords?.length) {
    if (!tok) throw new InvalidArgumentError("--bad-words needs a tokenizer");
    g.bad_words_ids = o.badWords.map((w) => tok.encode(w, { addSpecialTokens: false }));
  }
  if (g.eos_token_id === undefined && tok?.eosTokenId !== null && tok?.eosTokenId !== undefined) g.eos_token_id = tok.eosTokenId;
  return g;
}

function loadModel(path: string, dtype?: string): CausalLM {
  if (dtype && !["f32", "bf16", "f16"].includes(dtype)) throw new InvalidArgumentError("--dtype must be f32, bf16 or f16");
  const progress = process.stderr.isTTY ? (done: number, total: number) => {
    const w = 30, f = Math.round((done / total) * w);
    process.stderr.write(`\rloading [${"#".repeat(f)}${" ".repeat(w - f)}] ${done}/${total} tensors${done === total ? "\n" : ""}`);
  } : undefined;
  return AutoModelForCausalLM.fromPretrained(path, { dtype: dtype as DType | undefined, onProgress: progress });
}

export function registerTextCommands(program: Command): void {
  addKnobs(program.command("generate")
    .description("generate text (or token ids) with Hugging Face generation semantics")
    .requiredOption("-m, --model <path>", "a Hugging Face folder or a .gguf file")
    .argument("[prompt]", "the prompt text (needs the model's tokenizer)")
    .option("--prompt-ids <ids>", "comma-separated prompt token ids instead of text", parseIds)
    .option("--chat", "wrap the prompt as a user message in the chat template")
    .option("--suffix <text>", "fill in the middle: the prompt is the code before the hole, this the code after")
    .option("--stream", "print text as it is generated")
    .option("--json", "print JSON: with --prompt-ids {\"token_ids\", \"logprobs\"} (greedy), else {\"text\", \"token_ids\"} per sequence"))
    .addHelpText("after", `
Examples:
  fathom generate -m ./deepseek-coder "def fib(n):" --max-new-tokens 64
  fathom generate -m ./model "Tell me a story" --do-sample --temperature 0.7 --top-p 0.9 --seed 1 --stream
  fathom generate -m ./model "Hello" --num-beams 4 --num-return-sequences 2 --json
  fathom generate -m ./deepseek-coder "def add(a, b):\\n    " --suffix "\\n\\nprint(add(1, 2))" --max-new-tokens 32
  fathom generate -m model.gguf --prompt-ids 1,2,3 --max-new-tokens 16 --json`)
    .action(async (prompt: string | undefined, o: KnobFlags & { model: string; promptIds?: number[]; chat?: boolean; suffix?: string; stream?: boolean; json?: boolean }) => {
      if (o.promptIds && prompt !== undefined) throw new InvalidArgumentError("give either a prompt or --prompt-ids, not both");
      if (!o.promptIds && prompt === undefined) throw new InvalidArgumentError("a prompt (or --prompt-ids) is required");
      if (prompt !== undefined && prompt.length === 0) throw new InvalidArgumentError("the prompt is empty");
      const model = loadModel(o.model, o.dtype);
      if (o.promptIds) {
        const vocab = model.info().vocab_size;
        for (const id of o.promptIds) if (id >= vocab) throw new FathomError("generate", `prompt id ${id} is outside the vocabulary (${vocab} tokens)`);
        if (o.json && !o.doSample && !o.numBeams) {
          const r = model.generateGreedy(o.promptIds, o.maxNewTokens ?? 32, o.eosTokenId ?? []);
          console.log(JSON.stringify({ token_ids: r.tokenIds, logprobs: r.logprobs }));
          return;
        }
        const r = generate(model, [o.promptIds], { max_new_tokens: 32, ...knobs(o, null) });
        console.log(o.json ? JSON.stringify({ sequences: r.newTokens.map((t) => ({ token_ids: t })) }) : r.newTokens.map((t) => t.join(",")).join("\n"));
        return;
      }
      const tok = loadTokenizer(o.model);
      const opts = knobs(o, tok);
      let ids: number[];
      if (o.suffix !== undefined) ids = buildFimPrompt(tok, prompt!, o.suffix).ids;
      else if (o.chat) ids = tok.applyChatTemplate([{ role: "user", content: prompt! }], { addGenerationPrompt: true, tokenize: true }) as number[];
      else ids = tok.encode(prompt!);
      const text = (t: number[]) => (o.suffix !== undefined ? extractFimMiddle(tok.decode(t)) : tok.decode(t, { skipSpecialTokens: true }));
      if (o.stream && !o.json) {
        const dec = tok.streamDecoder({ skipSpecialTokens: true });
        for await (const t of generateStream(model, ids, opts)) process.stdout.write(dec.push(t));
        process.stdout.write(dec.flush() + "\n");
        return;
      }
      const r = generate(model, [ids], opts);
      if (o.json) console.log(JSON.stringify({ sequences: r.newTokens.map((t) => ({ text: text(t), token_ids: t })) }));
      else console.log(r.newTokens.map(text).join("\n---\n"));
    });

  program.command("tokenize")
    .description("encode text with a model's tokenizer (a folder holding only tokenizer files is enough)")
    .requiredOption("-m, --model <path>", "a folder with tokenizer.json, or a .gguf file")
    .argument("<text>", "the text")
    .option("--no-special", "do not add the BOS/EOS tokens encoding would add")
    .option("--json", "print {\"ids\": [...], \"tokens\": [...]}")
    .addHelpText("after", "\nExamples:\n  fathom tokenize -m ./deepseek-v3 \"Hello, 世界\" --json\n  fathom tokenize -m ./tok \"x = 1\" --no-special")
    .action((text: string, o: { model: string; special: boolean; json?: boolean }) => {
      const tok = loadTokenizer(o.model);
      const ids = tok.encode(text, { addSpecialTokens: o.special });
      const tokens = tok.convertIdsToTokens(ids);
      console.log(o.json ? JSON.stringify({ ids, tokens }) : ids.map((id, i) => `${id}\t${JSON.stringify(tokens[i])}`).join("\n"));
    });

  addKnobs(program.command("chat")
    .description("chat in the terminal: streams replies, keeps the history (/reset, /system <text>, /exit)")
    .requiredOption("-m, --model <path>", "a Hugging Face folder or a .gguf file")
    .option("--system <text>", "system prompt"))
    .addHelpText("after", "\nCommands inside the chat:\n  /reset           forget the conversation\n  /system <text>   set the system prompt (and reset)\n  /exit            leave\n\nExamples:\n  fathom chat -m ./deepseek-llm-7b-chat --temperature 0.7 --do-sample")
    .action(async (o: KnobFlags & { model: string; system?: string }) => {
      const model = loadModel(o.model, o.dtype);
      const tok = loadTokenizer(o.model);
      const opts = { max_new_tokens: 256, ...knobs(o, tok) };
      let system = o.system ?? "";
      let history: ChatMessage[] = [];
      let session = new GenerationSession();
      const reset = () => { history = []; session = new GenerationSession(); };
      const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
      const interactive = process.stdin.isTTY;
      if (interactive) process.stdout.write("fathom chat — /reset, /system <text>, /exit\n> ");
      for await (const line of rl) {
        const text = line.trim();
        if (text === "/exit" || text === "/quit") break;
        if (text === "/reset") { reset(); process.stdout.write("(conversation reset)\n"); }
        else if (text.startsWith("/system")) { system = text.slice(7).trim(); reset(); process.stdout.write("(system prompt set)\n"); }
        else if (text.startsWith("/")) process.stdout.write(`unknown command ${text} (try /reset, /system <text>, /exit)\n`);
        else if (text) {
          history.push({ role: "user", content: text });
          const messages: ChatMessage[] = system ? [{ role: "system", content: system }, ...history] : history;
          const ids = tok.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }) as number[];
          const dec = tok.streamDecoder({ skipSpecialTokens: true });
          let reply = "";
          try {
            for await (const t of generateStream(model, ids, { ...opts, session })) { const s = dec.push(t); reply += s; process.stdout.write(s); }
          } catch (e) {
            if (!(e instanceof FathomError)) throw e;
            process.stdout.write(`\n(error: ${e.message})`);
            reset();
          }
          const tail = dec.flush();
          reply += tail;
          process.stdout.write(tail + "\n");
          history.push({ role: "assistant", content: reply });
        }
        if (interactive) process.stdout.write("> ");
      }
      rl.close();
    });
}
