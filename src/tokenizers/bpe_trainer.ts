// Byte-level BPE trainer: text → a Hugging Face tokenizer.json (+ tokenizer_config.json) in DeepSeek-V3's layout.
// Training pre-tokenizes with JS regexes equivalent to the emitted Split patterns, so it sees the same pieces that
// encoding will; then runs the standard incremental BPE (pair counts, pair → words index, lazy max-heap).
// Not here: encoding (the loader, @huggingface/tokenizers, does that), normalizers, Unigram/WordPiece.
import { closeSync, mkdirSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { FathomError } from "../core/errors.js";
import { writeTextAtomic } from "../io/atomic.js";
import { BYTE_TO_CHAR } from "./byte_level.js";

// ---------------------------------------------------------------------------------------------------------------
// Byte-level alphabet (GPT-2 bytes_to_unicode): printable bytes map to themselves, the other 68 to U+0100, U+0101, ...

export { BYTE_TO_CHAR };

// ---------------------------------------------------------------------------------------------------------------
// Pre-tokenizer: DeepSeek-V3's three Split stages (behavior Isolated), then ByteLevel without its own regex.
// The Oniguruma patterns are written to tokenizer.json exactly as in DeepSeek-V3's file; the JS twins are what
// training runs. NOTE: `\s` becomes \p{White_Space} (Oniguruma's \s; JS's \s adds U+FEFF and misses U+0085),
// which is also how @huggingface/tokenizers rewrites the pattern when it loads it.

const V3_SPLITS: readonly { onig: string; js: RegExp }[] = [
  // 1. digit groups of at most three: "1234567" → "123" "456" "7"
  { onig: "\\p{N}{1,3}", js: /\p{N}{1,3}/gu },
  // 2. runs of CJK ideographs (U+4E00–U+9FA5), hiragana, katakana
  { onig: "[一-龥぀-ゟ゠-ヿ]+", js: /[一-龥぀-ゟ゠-ヿ]+/gu },
  // 3. ".append"-style punct+ASCII word | optional lead char + letters | punct/symbol run + newlines | newline runs
  //    | whitespace not followed by non-space | remaining whitespace
  {
    onig: "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    js: /[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\p{White_Space}*[\r\n]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu,
  },
];

/** The `pre_tokenizer` section written to tokenizer.json (identical to DeepSeek-V3's). */
export function deepseekV3PreTokenizer(): Record<string, unknown> {
  return {
    type: "Sequence",
    pretokenizers: [
      ...V3_SPLITS.map((s) => ({ type: "Split", pattern: { Regex: s.onig }, behavior: "Isolated", invert: false })),
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  };
}

// Isolated split (HF regex_split): matches and the gaps between them are both pieces; stage k feeds stage k + 1.
function splitStage(text: string, stage: number, emit: (piece: string) => void): void {
  if (stage === V3_SPLITS.length) { emit(text); return; }
  const re = V3_SPLITS[stage].js;
  re.lastIndex = 0;
  let prev = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (prev < m.index) splitStage(text.slice(prev, m.index), stage + 1, emit);
    splitStage(m[0], stage + 1, emit);
    prev = m.index + m[0].length;
  }
  if (prev < text.length) splitStage(text.slice(prev), stage + 1, emit);
}

/** Splits text into the pieces DeepSeek-V3's pre-tokenizer produces (before the byte-level mapping). */
export function preTokenize(text: string): string[] {
  const out: string[] = [];
  if (text.length) splitStage(text, 0, (p) => out.push(p));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Word counting: text (with special tokens cut out, as encoding does) → Map<piece, frequency>.

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const WS = /\p{White_Space}/u;

class WordCounter {
  readonly words = new Map<string, number>();
  pieces = 0;
  bytes = 0;
  private readonly specials: RegExp | null;
  constructor(specialTokens: readonly string[]) {
    // longest first, so that a special that is a prefix of another does not win
    const alts = [...specialTokens].sort((a, b) => b.length - a.length).map(escapeRe);
    this.specials = alts.length ? new RegExp(alts.join("|"), "gu") : null;
  }
  private count = (p: string): void => {
    this.words.set(p, (this.words.get(p) ?? 0) + 1);
    this.pieces++;
  };
  /** One independent span of text (a document, or a chunk cut where no pre-tokenizer piece can cross). */
  add(text: string): void {
    this.bytes += Buffer.byteLength(text, "utf8");
    if (!this.specials) { if (text.length) splitStage(text, 0, this.count); return; }
    for (const part of text.split(this.specials)) if (part.length) splitStage(part, 0, this.count);
  }
}

// A place where a file can be cut without changing its pieces: just after "\n" when the next character is not
// whitespace. No piece of the V3 pre-tokenizer crosses it: newlines only occur in pieces that end in a run of
// whitespace. Returns -1 when the buffer has no such place.
function safeCut(text: string): number {
  for (let i = text.lastIndexOf("\n", text.length - 2); i >= 0; i = text.lastIndexOf("\n", i - 1)) {
    if (!WS.test(text[i + 1])) return i + 1;
    if (i === 0) break;
  }
  return -1;
}

// Streams one file through the counter, `chunkBytes` at a time (UTF-8 sequences split across reads are handled by
// the streaming decoder). NOTE: a special token containing "\n" followed by non-space could be cut in two.
function countFile(path: string, counter: WordCounter, chunkBytes: number, progress: ((msg: string) => void) | null): void {
  let fd: number;
  try { fd = openSync(path, "r"); } catch (e) {
    throw new FathomError("tokenizer", `${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const buf = Buffer.allocUnsafe(chunkBytes);
    const dec = new TextDecoder("utf-8", { ignoreBOM: true });
    let carry = "";
    let read = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, chunkBytes, null);
      read += n;
      const text = carry + dec.decode(buf.subarray(0, n), { stream: n > 0 });
      if (n === 0) { counter.add(text); break; }
      const cut = safeCut(text);
      if (cut <= 0) { carry = text; continue; }
      counter.add(text.slice(0, cut));
      carry = text.slice(cut);
      progress?.(`${path}: ${(read / 1e6).toFixed(0)} MB read, ${counter.words.size.toLocaleString("en-US")} unique words`);
    }
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Incremental BPE.
//   words:  all unique words as byte-symbol ids in one Int32Array; word w lives at syms[start[w] .. start[w]+len[w]).
//   pairs:  key = a·K + b (K = vocab size, so key order = (a, b) lexicographic) → count and the words that
//           (may) contain it; stale word entries are skipped when the word no longer holds the pair.
//   heap:   (count, key) with the highest count on top, ties to the smallest key (HF's BpeTrainer does the same).
//           Lazy: a popped entry whose count is out of date is pushed back with the current count. Counts of
//           existing pairs only fall; every pair that gains (it contains the new token) is pushed after the merge.

// NOTE: `words` starts as the literal [w] (capacity 1): most pairs live in one word, and an array grown by push
// from [] reserves 17 slots, which tripled the memory of a 50 MB run.
interface PairStat { count: number; words: number[] }

class PairHeap {
  private c: number[] = [];
  private k: number[] = [];
  get size(): number { return this.c.length; }
  private above(i: number, j: number): boolean {
    return this.c[i] > this.c[j] || (this.c[i] === this.c[j] && this.k[i] < this.k[j]);
  }
  private swap(i: number, j: number): void {
    const c = this.c[i]; this.c[i] = this.c[j]; this.c[j] = c;
    const k = this.k[i]; this.k[i] = this.k[j]; this.k[j] = k;
  }
  push(count: number, key: number): void {
    let i = this.c.length;
    this.c.push(count); this.k.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p); i = p;
    }
  }
  /** Pops the top into `out` ([count, key]); false when empty. */
  pop(out: [number, number]): boolean {
    const n = this.c.length;
    if (!n) return false;
    out[0] = this.c[0]; out[1] = this.k[0];
    const lc = this.c.pop()!, lk = this.k.pop()!;
    if (n > 1) {
      this.c[0] = lc; this.k[0] = lk;
      for (let i = 0; ;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < n - 1 && this.above(l, m)) m = l;
        if (r < n - 1 && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m); i = m;
      }
    }
    return true;
  }
}

interface MergeResult { merges: [number, number][]; stop: "vocab" | "no-pairs" | "min-frequency" }

/**
 * Learns merges until `tokens` (id → string, pre-filled with specials and the 256 byte symbols) holds vocabSize
 * entries. A merge whose string already exists reuses that id (and still counts as a merge), as HF does.
 */
function learnMerges(
  wordList: Map<string, number>, tokens: string[], ids: Map<string, number>, byteId: Int32Array,
  vocabSize: number, minFrequency: number, progress: ((msg: string) => void) | null,
): MergeResult {
  const nWords = wordList.size;
  let total = 0;
  for (const w of wordList.keys()) total += Buffer.byteLength(w, "utf8");
  const syms = new Int32Array(total);
  const start = new Int32Array(nWords), len = new Int32Array(nWords), freq = new Float64Array(nWords);
  const K = vocabSize;
  const pairs = new Map<number, PairStat>();
  {
    let w = 0, off = 0;
    for (const [word, f] of wordList) {
      const bytes = Buffer.from(word, "utf8");
      start[w] = off; len[w] = bytes.length; freq[w] = f;
      for (let i = 0; i < bytes.length; i++) syms[off + i] = byteId[bytes[i]];
      for (let i = off; i + 1 < off + bytes.length; i++) {
        const key = syms[i] * K + syms[i + 1];
        const p = pairs.get(key);
        if (!p) pairs.set(key, { count: f, words: [w] });
        else { p.count += f; if (p.words[p.words.length - 1] !== w) p.words.push(w); }
      }
      off += bytes.length; w++;
    }
  }
  const heap = new PairHeap();
  for (const [key, p] of pairs) heap.push(p.count, key);

  const merges: [number, number][] = [];
  const stamp = new Int32Array(nWords).fill(-1);
  const top: [number, number] = [0, 0];
  const gained = new Set<number>();
  let mergedKey = -1, f = 0, w = 0;
  const dec = (key: number) => {
    if (key === mergedKey) return;
    const p = pairs.get(key)!;
    p.count -= f;
    if (p.count <= 0) pairs.delete(key);
  };
  const inc = (key: number) => {
    const p = pairs.get(key);
    if (!p) pairs.set(key, { count: f, words: [w] });
    else { p.count += f; if (p.words[p.words.length - 1] !== w) p.words.push(w); }
    gained.add(key);
  };
  let lastReport = Date.now();
  let stop: MergeResult["stop"] = "vocab";
  while (ids.size < vocabSize) {
    if (!heap.pop(top)) { stop = "no-pairs"; break; }
    const [count, key] = top;
    const p = pairs.get(key);
    const cur = p ? p.count : 0;
    if (cur !== count) { if (cur > 0) heap.push(cur, key); continue; }
    if (count < minFrequency) { stop = "min-frequency"; break; }
    const a = Math.floor(key / K), b = key - a * K;
    const str = tokens[a] + tokens[b];
    let id = ids.get(str);
    if (id === undefined) { id = tokens.length; tokens.push(str); ids.set(str, id); }
    const mergeNo = merges.length;
    merges.push([a, b]);
    mergedKey = key;
    pairs.delete(key);
    gained.clear();
    for (const wi of p!.words) {
      if (stamp[wi] === mergeNo) continue;
      stamp[wi] = mergeNo;
      w = wi; f = freq[wi];
      const s = start[wi], end = s + len[wi];
      let out = s;
      // Left to right, as encoding applies a merge. Deltas are taken against the word as rewritten so far, so
      // overlapping cases ("aaa", "abab") come out right.
      for (let i = s; i < end;) {
        if (i + 1 < end && syms[i] === a && syms[i + 1] === b) {
          if (out > s) { const prev = syms[out - 1]; dec(prev * K + a); inc(prev * K + id); }
          if (i + 2 < end) { const next = syms[i + 2]; dec(b * K + next); inc(id * K + next); }
          syms[out++] = id; i += 2;
        } else syms[out++] = syms[i++];
      }
      len[wi] = out - s;
    }
    for (const g of gained) { const q = pairs.get(g); if (q) heap.push(q.count, g); }
    if (progress && Date.now() - lastReport > 1000) {
      lastReport = Date.now();
      progress(`merge ${merges.length.toLocaleString("en-US")}: vocab ${ids.size.toLocaleString("en-US")} / ${vocabSize.toLocaleString("en-US")} (pair count ${count})`);
    }
  }
  return { merges, stop };
}

// ---------------------------------------------------------------------------------------------------------------
// Public API

export interface TrainBPEInput {
  /** Text files, streamed in chunks; each file is one document. */
  files?: string[];
  /** Documents; each string is pre-tokenized on its own. */
  texts?: Iterable<string>;
}

export interface TrainBPEOptions {
  /** Total vocabulary: special tokens + 256 byte symbols + merged tokens. */
  vocabSize: number;
  /** Added tokens with special: true, given ids 0, 1, ... Convention: [0] is BOS, [1] is EOS (and pad). */
  specialTokens?: string[];
  /** Stop merging when the best pair occurs fewer times than this (default 2). */
  minFrequency?: number;
  /** Progress lines on stderr. */
  showProgress?: boolean;
  /** tokenizer_config.json model_max_length (default 131072, DeepSeek-V3's). */
  modelMaxLength?: number;
  /** Bytes read from a file at a time (default 8 MiB); tests set it small to cross chunk boundaries. */
  chunkBytes?: number;
}

export interface TrainBPEStats {
  vocabSize: number;
  requestedVocabSize: number;
  merges: number;
  specialTokens: number;
  uniqueWords: number;
  pieces: number;
  bytes: number;
  seconds: number;
  /** Why merging stopped: "vocab" (size reached), "no-pairs" or "min-frequency" (corpus too small). */
  stop: "vocab" | "no-pairs" | "min-frequency";
  /** Set when the vocabulary is smaller than asked: says why, in one sentence. */
  warning: string | null;
}

export type TokenizerJSON = Record<string, unknown> & {
  added_tokens: { id: number; content: string; special: boolean }[];
  model: Record<string, unknown> & { type: "BPE"; vocab: Record<string, number>; merges: string[] };
};
export type TokenizerConfigJSON = Record<string, unknown>;

export interface TrainBPEResult { tokenizer: TokenizerJSON; config: TokenizerConfigJSON; stats: TrainBPEStats }

/**
 * Trains a byte-level BPE tokenizer with DeepSeek-V3's pre-tokenizer.
 *
 * ```ts
 * const { tokenizer, config, stats } = trainBPE({ files: ["corpus.txt"] }, { vocabSize: 8000, specialTokens: ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"] });
 * saveTokenizer("out/", tokenizer, config);   // out/tokenizer.json, out/tokenizer_config.json
 * ```
 * Ids: specials first (0..S-1), then the 256 byte symbols (sorted by their character, as HF does), then merges
 * in the order learned. The vocabulary has exactly vocabSize tokens unless the corpus runs out of pairs (or of
 * pairs seen minFrequency times): then `stats.warning` says so.
 */
export function trainBPE(input: TrainBPEInput, opts: TrainBPEOptions): TrainBPEResult {
  const t0 = performance.now();
  const specials = opts.specialTokens ?? [];
  const minFrequency = opts.minFrequency ?? 2;
  const { vocabSize } = opts;
  if (new Set(specials).size !== specials.length) throw new FathomError("tokenizer", `special tokens repeat: ${specials.join(", ")}`);
  if (specials.some((s) => s.length === 0)) throw new FathomError("tokenizer", "a special token is empty");
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + specials.length) {
    throw new FathomError("tokenizer", `vocab size ${vocabSize} is too small: it must hold the 256 byte symbols and ${specials.length} special tokens (≥ ${256 + specials.length})`);
  }
  if (vocabSize > 1 << 21) throw new FathomError("tokenizer", `vocab size ${vocabSize} is over the supported 2,097,152`);
  if (!Number.isInteger(minFrequency) || minFrequency < 0) throw new FathomError("tokenizer", `min frequency must be an integer ≥ 0, got ${minFrequency}`);
  const files = input.files ?? [];
  for (const f of files) {
    let isFile = false;
    try { isFile = statSync(f).isFile(); } catch { /* reported below */ }
    if (!isFile) throw new FathomError("tokenizer", `${f}: no such file`);
  }
  const say = opts.showProgress ? (msg: string) => process.stderr.write(`[bpe] ${msg}\n`) : null;

  const counter = new WordCounter(specials);
  for (const f of files) countFile(f, counter, opts.chunkBytes ?? 8 << 20, say);
  if (input.texts) for (const t of input.texts) counter.add(t);
  if (counter.words.size === 0) throw new FathomError("tokenizer", "empty corpus: no text to train on");
  say?.(`${(counter.bytes / 1e6).toFixed(1)} MB, ${counter.pieces.toLocaleString("en-US")} pieces, ${counter.words.size.toLocaleString("en-US")} unique words (${((performance.now() - t0) / 1000).toFixed(1)} s)`);

  // ids: specials, then the byte alphabet sorted by character
  const tokens: string[] = [];
  const ids = new Map<string, number>();
  const add = (s: string) => { let id = ids.get(s); if (id === undefined) { id = tokens.length; tokens.push(s); ids.set(s, id); } return id; };
  for (const s of specials) add(s);
  const byteId = new Int32Array(256);
  const order = [...Array(256).keys()].sort((x, y) => BYTE_TO_CHAR[x].charCodeAt(0) - BYTE_TO_CHAR[y].charCodeAt(0));
  for (const b of order) byteId[b] = add(BYTE_TO_CHAR[b]);

  const { merges, stop } = learnMerges(counter.words, tokens, ids, byteId, vocabSize, minFrequency, say);
  const seconds = (performance.now() - t0) / 1000;
  const warning = ids.size < vocabSize
    ? `corpus too small: the vocabulary has ${ids.size} tokens, not the ${vocabSize} asked (${stop === "no-pairs" ? "no pairs of symbols left to merge" : `no pair occurs ${minFrequency} times or more`})`
    : null;
  const vocab: Record<string, number> = {};
  for (let i = 0; i < tokens.length; i++) vocab[tokens[i]] = i;
  const tokenizer: TokenizerJSON = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: deepseekV3PreTokenizer(),
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false,
      vocab,
      merges: merges.map(([a, b]) => `${tokens[a]} ${tokens[b]}`),
    },
  };
  const bos = specials[0] ?? null, eos = specials[1] ?? null;
  const config: TokenizerConfigJSON = {
    add_bos_token: bos !== null,
    add_eos_token: false,
    bos_token: bos,
    eos_token: eos,
    pad_token: eos,
    unk_token: null,
    clean_up_tokenization_spaces: false,
    model_max_length: opts.modelMaxLength ?? 131072,
    tokenizer_class: "LlamaTokenizerFast",
  };
  const stats: TrainBPEStats = {
    vocabSize: ids.size, requestedVocabSize: vocabSize, merges: merges.length, specialTokens: specials.length,
    uniqueWords: counter.words.size, pieces: counter.pieces, bytes: counter.bytes, seconds, stop, warning,
  };
  say?.(`done: vocab ${ids.size}, ${merges.length} merges, ${seconds.toFixed(1)} s`);
  return { tokenizer, config, stats };
}

/**
 * tokenizer.json text: JSON with 2-space indents, the vocabulary written in id order (JSON.stringify would put
 * integer-like keys such as "7" or "12" first).
 */
export function stringifyTokenizer(json: TokenizerJSON): string {
  const vocab = json.model.vocab;
  const SENTINEL = "\u0000vocab\u0000";
  const text = JSON.stringify({ ...json, model: { ...json.model, vocab: SENTINEL } }, null, 2);
  const entries = Object.entries(vocab).sort((x, y) => x[1] - y[1]);
  const body = entries.length ? `{\n${entries.map(([k, v]) => `      ${JSON.stringify(k)}: ${v}`).join(",\n")}\n    }` : "{}";
  return text.replace(JSON.stringify(SENTINEL), () => body) + "\n";
}

/** Writes dir/tokenizer.json and dir/tokenizer_config.json, each atomically (the directory is created if needed). */
export function saveTokenizer(dir: string, json: TokenizerJSON, config: TokenizerConfigJSON): void {
  try { mkdirSync(dir, { recursive: true }); } catch (e) {
    throw new FathomError("tokenizer", `${dir}: cannot create directory: ${(e as Error).message}`);
  }
  writeTextAtomic(join(dir, "tokenizer.json"), stringifyTokenizer(json), "tokenizer");
  writeTextAtomic(join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n", "tokenizer");
}
