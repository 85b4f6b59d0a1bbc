// `fathom tokenize`, `fathom generate` with text and `fathom chat`, end to end on a tiny model with a trained tokenizer.
import assert from "node:assert/strict";
import { test, before, after } from "node:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as F from "../src/index.js";
import { trainBPE, saveTokenizer } from "../src/tokenizers/bpe_trainer.js";
import { Tokenizer } from "../src/tokenizers/tokenizer.js";
import { TINY_LLAMA } from "./fixtures.js";

let dir = "", tokDir = "";
let tok: Tokenizer;
let model: F.CausalLM;
const run = (args: string[], input?: string) =>
  spawnSync(process.execPath, ["--import", "tsx", "src/cli/run.ts", ...args], { encoding: "utf8", input, timeout: 120_000 });

before(() => {
  dir = mkdtempSync(join(tmpdir(), "fathom-cli-"));
  tokDir = join(dir, "tok");
  mkdirSync(tokDir);
  const lines = ["hello world, this is a tiny corpus.", "the quick brown fox jumps over the lazy dog", "def add(a, b):\n    return a + b",
    "你好，世界", "numbers 12345 and 67890", "the the the hello hello world world"];
  const { tokenizer, config } = trainBPE({ texts: Array.from({ length: 20 }, () => lines).flat() },
    { vocabSize: 320, minFrequency: 1, specialTokens: ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"] });
  saveTokenizer(tokDir, tokenizer, config);
  saveTokenizer(join(dir, "model"), tokenizer, config);
  tok = Tokenizer.fromPretrained(tokDir);
  model = F.randomModel({ ...TINY_LLAMA, vocab_size: tok.vocabSize, bos_token_id: tok.bosTokenId, eos_token_id: tok.eosTokenId }, { seed: 3, init: "scaled" });
  model.savePretrained(join(dir, "model"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("fathom tokenize works on a folder with only tokenizer files; --no-special drops BOS", () => {
  const r = run(["tokenize", "-m", tokDir, "hello world 123", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  assert.deepEqual(o.ids, tok.encode("hello world 123"));
  assert.equal(o.tokens.length, o.ids.length);
  assert.equal(o.ids[0], tok.bosTokenId);
  const n = JSON.parse(run(["tokenize", "-m", tokDir, "hello world 123", "--json", "--no-special"]).stdout);
  assert.deepEqual(n.ids, tok.encode("hello world 123", { addSpecialTokens: false }));
});

test("fathom generate with text equals the library; streaming prints the same text", () => {
  const r = run(["generate", "-m", join(dir, "model"), "hello world", "--max-new-tokens", "6", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  const want = F.generate(model, [tok.encode("hello world")], { max_new_tokens: 6, eos_token_id: tok.eosTokenId }).newTokens[0];
  assert.deepEqual(o.sequences[0].token_ids, want);
  assert.equal(o.sequences[0].text, tok.decode(want, { skipSpecialTokens: true }));
  const s = run(["generate", "-m", join(dir, "model"), "hello world", "--max-new-tokens", "6", "--stream"]);
  assert.equal(s.status, 0, s.stderr);
  assert.equal(s.stdout.trimEnd(), o.sequences[0].text.trimEnd());
  const b = run(["generate", "-m", join(dir, "model"), "the quick", "--max-new-tokens", "4", "--num-beams", "3", "--num-return-sequences", "2", "--json"]);
  assert.equal(JSON.parse(b.stdout).sequences.length, 2, b.stderr);
  const samp = ["generate", "-m", join(dir, "model"), "hello", "--do-sample", "--seed", "5", "--top-p", "0.9", "--max-new-tokens", "5", "--json"];
  assert.equal(run(samp).stdout, run(samp).stdout);
});

test("fathom chat streams replies and handles /system, /reset and /exit", () => {
  const r = run(["chat", "-m", join(dir, "model"), "--max-new-tokens", "5"], "hello\n/system Be brief.\nworld\n/reset\n/nope\n/exit\n");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\(system prompt set\)/);
  assert.match(r.stdout, /\(conversation reset\)/);
  assert.match(r.stdout, /unknown command \/nope/);
});

test("bad input: one line, non-zero exit, no stack trace", () => {
  const cases: [string[], RegExp][] = [
    [["generate", "-m", join(dir, "model"), ""], /prompt is empty/],
    [["generate", "-m", join(dir, "model"), "hi", "--top-p", "2"], /--top-p must be a number in \[0, 1\]/],
    [["generate", "-m", join(dir, "model"), "hi", "--do-sample", "--temperature", "0"], /temperature: has to be a strictly positive float/],
    [["generate", "-m", join(dir, "model"), "hi", "--num-return-sequences", "2"], /num_return_sequences/],
    [["generate", "-m", join(dir, "model"), "hi", "--bogus"], /unknown option '--bogus'/],
    [["generate", "-m", join(dir, "model"), "x ".repeat(300)], /does not fit the context/],
    [["tokenize", "-m", dir, "hi"], /missing tokenizer\.json/],
  ];
  for (const [args, re] of cases) {
    const r = run(args);
    assert.notEqual(r.status, 0, args.join(" "));
    assert.match(r.stderr, re, args.join(" "));
    assert.doesNotMatch(r.stderr, /\n\s+at .*\.(ts|js):\d+/, args.join(" "));
  }
});
