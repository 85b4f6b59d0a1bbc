// The byte-level BPE trainer: hand-computed merges, the incremental algorithm against a naive recount, the
// pre-tokenizer against DeepSeek-V3's file and the loader, round trips through @huggingface/tokenizers on real
// lines, special tokens, vocab size, determinism, chunked file reading, and the `fathom tokenizer train` CLI.
import assert from "node:assert/strict";
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { BYTE_TO_CHAR, deepseekV3PreTokenizer, preTokenize, saveTokenizer, stringifyTokenizer, trainBPE } from "../src/tokenizers/bpe_trainer.js";
import { FathomError } from "../src/core/errors.js";

// shared/data inside the checkout, or beside it
const ROOT = join(import.meta.dirname, "..");
const DATA = [join(ROOT, "shared", "data"), join(ROOT, "..", "shared", "data")].find((d) => existsSync(join(d, "en", "tinyshakespeare.txt")));
const head = (p: string, n: number) => readFileSync(join(DATA!, p), "utf8").split("\n").slice(0, n);
const noData = DATA ? false : "shared/data not found";

const BOS = "<｜begin▁of▁sentence｜>", EOS = "<｜end▁of▁sentence｜>";
const tmp = () => mkdtempSync(join(tmpdir(), "fathom-bpe-"));
const load = (r: { tokenizer: object; config: object }) => new Tokenizer(JSON.parse(stringifyTokenizer(r.tokenizer as never)), r.config);

test("hand-computed merges on aaabdaaabac", () => {
  // One piece (all letters). Pair counts over a a a b d a a a b a c: aa 4, ab 2, bd da ba ac 1 each.
  //  1. a+a (4)      → [aa a b d aa a b a c]        (left to right, so "aaa" becomes "aa a")
  //     now aa·a 2, a·b 2: a tie, broken by the smaller id pair: (a, b) < (aa, a) since id(a) < id(aa)
  //  2. a+b (2)      → [aa ab d aa ab a c]          aa·ab 2, the rest 1
  //  3. aa+ab (2)    → [aaab d aaab a c]            every pair now 1: with minFrequency 2 training stops here
  //  4. a+c (1)      smallest first id among (aaab,d) (d,aaab) (aaab,a) (a,c): byte ids follow the character
  //  5. d+aaab (1)   → [aaab daaab ac]
  const r2 = trainBPE({ texts: ["aaabdaaabac"] }, { vocabSize: 300 });
  assert.deepEqual(r2.tokenizer.model.merges, ["a a", "a b", "aa ab"]);
  assert.equal(r2.stats.stop, "min-frequency");
  assert.equal(r2.stats.vocabSize, 259);
  assert.match(r2.stats.warning!, /corpus too small: the vocabulary has 259 tokens, not the 300 asked/);
  const r1 = trainBPE({ texts: ["aaabdaaabac"] }, { vocabSize: 261, minFrequency: 1 });
  assert.deepEqual(r1.tokenizer.model.merges, ["a a", "a b", "aa ab", "a c", "d aaab"]);
  assert.equal(r1.stats.warning, null);
  const v = r1.tokenizer.model.vocab;
  assert.deepEqual([v.aa, v.ab, v.aaab, v.ac, v.daaab], [256, 257, 258, 259, 260]);
  assert.equal(v["!"], 0); // alphabet sorted by character: "!" (0x21) first, as in GPT-2's vocabulary
  assert.equal(v["Ġ"], 256 - 68 + 32); // space is the 33rd of the 68 remapped bytes (U+0100 + 32)
  // runs: "aaaa" → aa aa (a new pair aa·aa), "aaa" → aa a; so aa·aa (2) beats aa·a (1)
  const r3 = trainBPE({ texts: ["aaaa", "aaaa", "aaa"] }, { vocabSize: 259, minFrequency: 1 });
  assert.deepEqual(r3.tokenizer.model.merges.slice(0, 2), ["a a", "aa aa"]);
});

// Naive BPE: recount every pair from scratch at each step (the specification the incremental trainer must match).
function naiveMerges(words: Map<string, number>, nMerges: number): string[] {
  const order = [...Array(256).keys()].sort((x, y) => BYTE_TO_CHAR[x].charCodeAt(0) - BYTE_TO_CHAR[y].charCodeAt(0));
  const tokens = order.map((b) => BYTE_TO_CHAR[b]);
  const id = new Map(tokens.map((t, i) => [t, i]));
  const ws = [...words].map(([w, f]) => ({ s: [...Buffer.from(w)].map((b) => id.get(BYTE_TO_CHAR[b])!), f }));
  const out: string[] = [];
  while (out.length < nMerges) {
    const counts = new Map<string, number>();
    for (const { s, f } of ws) for (let i = 0; i + 1 < s.length; i++) counts.set(`${s[i]},${s[i + 1]}`, (counts.get(`${s[i]},${s[i + 1]}`) ?? 0) + f);
    let best: [number, number] | null = null, bc = 0;
    for (const [k, c] of counts) {
      const [a, b] = k.split(",").map(Number);
      if (c > bc || (c === bc && (a < best![0] || (a === best![0] && b < best![1])))) { best = [a, b]; bc = c; }
    }
    if (!best || bc < 2) break;
    const [a, b] = best, str = tokens[a] + tokens[b];
    let nid = id.get(str);
    if (nid === undefined) { nid = tokens.length; tokens.push(str); id.set(str, nid); }
    out.push(`${tokens[a]} ${tokens[b]}`);
    for (const w of ws) {
      const s: number[] = [];
      for (let i = 0; i < w.s.length;) if (i + 1 < w.s.length && w.s[i] === a && w.s[i + 1] === b) { s.push(nid); i += 2; } else s.push(w.s[i++]);
      w.s = s;
    }
  }
  return out;
}

test("the incremental trainer matches a naive full recount", { skip: noData }, () => {
  const lines = [...head("en/twain1.txt", 150), ...head("zh/lunyu.txt", 60), ...head("code/python_stdlib.txt", 150), "aaaa bbbbbb abababab 1111111"];
  const words = new Map<string, number>();
  for (const l of lines) for (const p of preTokenize(l)) words.set(p, (words.get(p) ?? 0) + 1);
  const r = trainBPE({ texts: lines }, { vocabSize: 256 + 300 });
  assert.deepEqual(r.tokenizer.model.merges, naiveMerges(words, r.stats.merges));
  assert.equal(r.stats.merges, 300);
});

test("the pre-tokenizer: DeepSeek-V3's section, digit groups, CJK runs, punctuation, whitespace", () => {
  const v3 = dataV3();
  if (v3) assert.deepEqual(deepseekV3PreTokenizer(), v3.pre_tokenizer);
  assert.deepEqual(preTokenize("1234567"), ["123", "456", "7"]); // \p{N}{1,3}: groups of three from the left
  assert.deepEqual(preTokenize("x=12345;"), ["x", "=", "123", "45", ";"]);
  assert.deepEqual(preTokenize("你好世界，hello"), ["你好世界", "，", "hello"]); // CJK run, fullwidth punctuation
  assert.deepEqual(preTokenize("カタカナ・ひらがな"), ["カタカナ", "・", "ひらがな"]); // katakana middle dot is \p{P}
  assert.deepEqual(preTokenize("x.append(y)"), ["x", ".append", "(y", ")"]); // one ASCII punct + ASCII letters
  assert.deepEqual(preTokenize("Hello, world!\n\n  foo  bar"), ["Hello", ",", " world", "!\n\n", " ", " foo", " ", " bar"]); // a space joins the next word
  assert.deepEqual(preTokenize("a \n\n b"), ["a", " \n\n", " b"]);
  assert.deepEqual(preTokenize(""), []);
});

function dataV3(): { pre_tokenizer: unknown } | null {
  const p = join(import.meta.dirname, "..", "node_modules", "@lenml", "tokenizer-deepseek_v3", "models", "tokenizer.json");
  return existsSync(p) ? JSON.parse(readFileSync(p, "utf8")) : null;
}

const mixedLines = () => [...head("en/tinyshakespeare.txt", 1500), ...head("zh/songci.txt", 1000), ...head("code/zod_src_ts.txt", 1500)];

test("round trip through @huggingface/tokenizers on mixed English, Chinese and code", { skip: noData }, () => {
  const lines = mixedLines();
  const r = trainBPE({ texts: lines }, { vocabSize: 1500, specialTokens: [BOS, EOS] });
  assert.equal(r.stats.vocabSize, 1500);
  assert.equal(r.stats.warning, null);
  const tok = load(r);
  assert.equal(tok.get_vocab().size, 1500);
  const toBL = (s: string) => [...Buffer.from(s, "utf8")].map((b) => BYTE_TO_CHAR[b]).join("");
  let tokens = 0;
  for (const line of lines) {
    if (!line) continue;
    // training saw what the loader's pre-tokenizer produces
    assert.deepEqual((tok as unknown as { pre_tokenizer: (s: string) => string[] }).pre_tokenizer(line), preTokenize(line).map(toBL), line);
    const ids = tok.encode(line).ids;
    tokens += ids.length;
    assert.equal(tok.decode(ids), line);
  }
  const doc = lines.slice(0, 300).join("\n");
  assert.equal(tok.decode(tok.encode(doc).ids), doc);
  const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
  assert.ok(bytes / tokens > 2, `compression ${bytes / tokens} bytes/token`); // it learned something
  // special tokens: one id each, ids 0 and 1, never split, and kept out of training
  const e = tok.encode(`${BOS}hello 世界${EOS}`);
  assert.equal(e.ids[0], 0);
  assert.equal(e.ids[e.ids.length - 1], 1);
  assert.equal(tok.decode(e.ids), `${BOS}hello 世界${EOS}`);
  assert.equal(tok.decode(e.ids, { skip_special_tokens: true }), "hello 世界");
  assert.deepEqual(r.tokenizer.added_tokens.map((t) => [t.id, t.content, t.special]), [[0, BOS, true], [1, EOS, true]]);
  assert.deepEqual([r.config.bos_token, r.config.eos_token, r.config.add_bos_token, r.config.tokenizer_class], [BOS, EOS, true, "LlamaTokenizerFast"]);
});

test("special tokens in the text are cut out before counting", () => {
  const r = trainBPE({ texts: ["<eot>hi<eot>hi<eot>hi<eot>"] }, { vocabSize: 270, specialTokens: ["<eot>"], minFrequency: 2 });
  assert.deepEqual(r.tokenizer.model.merges, ["h i"]);
  assert.equal(load(r).encode("x<eot>y").ids.length, 3);
});

test("same input gives the same file bytes; files read in small chunks count like whole documents", { skip: noData }, () => {
  const dir = tmp();
  try {
    const corpus = join(dir, "corpus.txt");
    // CRLF, blank-line runs, indentation and multi-byte characters all land on chunk edges with 4 KiB chunks
    writeFileSync(corpus, [...mixedLines().slice(0, 2500), "  \r\n\r\n\t last"].join("\n").replace(/\n(?=[A-Z])/g, "\r\n"));
    const opts = { vocabSize: 800, specialTokens: [BOS, EOS] };
    const a = trainBPE({ files: [corpus] }, opts), b = trainBPE({ files: [corpus] }, { ...opts, chunkBytes: 4096 });
    const c = trainBPE({ texts: [readFileSync(corpus, "utf8")] }, opts);
    assert.equal(a.stats.uniqueWords, c.stats.uniqueWords);
    assert.equal(stringifyTokenizer(a.tokenizer), stringifyTokenizer(c.tokenizer));
    assert.equal(stringifyTokenizer(b.tokenizer), stringifyTokenizer(c.tokenizer));
    saveTokenizer(join(dir, "x"), a.tokenizer, a.config);
    saveTokenizer(join(dir, "y"), b.tokenizer, b.config);
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) assert.ok(readFileSync(join(dir, "x", f)).equals(readFileSync(join(dir, "y", f))), f);
    assert.deepEqual(readdirSync(join(dir, "x")).sort(), ["tokenizer.json", "tokenizer_config.json"]); // no temp files left
    // the vocabulary is written in id order (JSON.stringify would move "0".."9" first)
    const text = readFileSync(join(dir, "x", "tokenizer.json"), "utf8");
    const ids = [...text.slice(text.indexOf('"vocab"'), text.indexOf('"merges"')).matchAll(/: (\d+)/g)].map((m) => Number(m[1]));
    assert.deepEqual(ids, [...Array(800).keys()]);
    assert.deepEqual(JSON.parse(text).model.vocab, a.tokenizer.model.vocab);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test("bad input: vocab too small, empty corpus, missing file, repeated specials", () => {
  const err = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e) => e instanceof FathomError && re.test(e.message));
  err(() => trainBPE({ texts: ["abc"] }, { vocabSize: 257, specialTokens: [BOS, EOS] }), /vocab size 257 is too small.*≥ 258/);
  err(() => trainBPE({ texts: ["", ""] }, { vocabSize: 300 }), /empty corpus/);
  err(() => trainBPE({ texts: [BOS] }, { vocabSize: 300, specialTokens: [BOS] }), /empty corpus/);
  err(() => trainBPE({ files: ["/nonexistent/x.txt"] }, { vocabSize: 300 }), /\/nonexistent\/x\.txt: no such file/);
  err(() => trainBPE({ texts: ["ab"] }, { vocabSize: 300, specialTokens: ["<a>", "<a>"] }), /repeat/);
  // a corpus too small for the vocab still trains, and says so
  const r = trainBPE({ texts: ["ab ab"] }, { vocabSize: 1000 });
  assert.equal(r.stats.vocabSize, 257);
  assert.match(r.stats.warning!, /corpus too small/);
});

const cli = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", "src/cli/run.ts", ...args], { encoding: "utf8" });

test("fathom tokenizer train end to end, and its errors", { skip: noData }, () => {
  const dir = tmp();
  try {
    const en = join(dir, "en.txt"), zh = join(dir, "zh.txt"), empty = join(dir, "empty.txt"), out = join(dir, "tok");
    writeFileSync(en, head("en/tinyshakespeare.txt", 1500).join("\n"));
    writeFileSync(zh, head("zh/songci.txt", 800).join("\n"));
    writeFileSync(empty, "");
    const r = cli("tokenizer", "train", "--files", en, zh, "--vocab-size", "700", "--out", out, "--min-frequency", "2", "--quiet");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /vocab size\s+700 \(2 special \+ 256 bytes \+ 442 merged\)/);
    assert.match(r.stdout, /merges\s+\d+/);
    assert.match(r.stdout, /time\s+[\d.]+ s/);
    const json = JSON.parse(readFileSync(join(out, "tokenizer.json"), "utf8"));
    const config = JSON.parse(readFileSync(join(out, "tokenizer_config.json"), "utf8"));
    const tok = new Tokenizer(json, config);
    const s = `${BOS}${head("en/tinyshakespeare.txt", 3).join("\n")}\n${head("zh/songci.txt", 2)[1]}`;
    assert.equal(tok.decode(tok.encode(s).ids), s);
    assert.equal(tok.encode(BOS).ids.length, 1);

    const custom = cli("tokenizer", "train", "--files", en, "--vocab-size", "300", "--out", join(dir, "t2"), "--special-tokens", "<s>,</s>,<pad>", "--quiet");
    assert.equal(custom.status, 0, custom.stderr);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, "t2", "tokenizer.json"), "utf8")).added_tokens.map((t: { content: string }) => t.content), ["<s>", "</s>", "<pad>"]);

    const help = cli("tokenizer", "train", "--help");
    assert.equal(help.status, 0);
    assert.match(help.stdout, /Examples:\n {2}fathom tokenizer train --files/);

    for (const [args, re] of [
      [["--files", join(dir, "missing.txt"), "--vocab-size", "500", "--out", out], /missing\.txt: no such file/],
      [["--files", en, "--vocab-size", "257", "--out", out], /vocab size 257 is too small/],
      [["--files", empty, "--vocab-size", "500", "--out", out], /empty corpus/],
      [["--files", en, "--vocab-size", "many", "--out", out], /--vocab-size must be an integer/],
    ] as [string[], RegExp][]) {
      const e = cli("tokenizer", "train", ...args, "--quiet");
      assert.notEqual(e.status, 0, args.join(" "));
      assert.match(e.stderr, re);
      assert.doesNotMatch(e.stderr, /at .*\.ts:\d+/); // one line, no stack trace
    }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
