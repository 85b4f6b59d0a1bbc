// Tokenizer metadata between a Hugging Face tokenizer.json (+ tokenizer_config.json) and GGUF `tokenizer.ggml.*` keys,
// for byte-level BPE tokenizers (GGUF model "gpt2"). Vocabulary, merges, added tokens, their ids and the special-token
// settings round-trip exactly. GGUF does not carry the pre-tokenizer regexes: ggufToTokenizer rebuilds them from the
// `tokenizer.ggml.pre` name for the names it knows (see PRE_SPLITS) and falls back to GPT-2's byte-level split otherwise.
import { FormatError } from "../core/errors.js";
import type { GGUFArray, GGUFEntry, GGUFMetadataEntry } from "./gguf.js";

/** tokenizer.ggml.token_type values. */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

// Loose shapes of the JSON files (only the fields we use are typed).
type Json = Record<string, any>;
interface AddedToken { id: number; content: string; special?: boolean; single_word?: boolean; lstrip?: boolean; rstrip?: boolean; normalized?: boolean }

const fail = (msg: string): never => { throw new FormatError("gguf", `tokenizer: ${msg}`); };
const tokenText = (t: unknown): string | undefined =>
  typeof t === "string" ? t : t && typeof t === "object" && typeof (t as Json).content === "string" ? (t as Json).content : undefined;

/**
 * GGUF metadata entries for a byte-level BPE tokenizer.json (and optionally its tokenizer_config.json).
 * `pre` names llama.cpp's pre-tokenizer ("deepseek-v3", "deepseek-coder", "deepseek-llm", "gpt-2", ...).
 */
export function tokenizerToGGUF(tokenizerJson: Json, tokenizerConfig: Json | undefined, opts: { pre: string }): GGUFMetadataEntry[] {
  const model = tokenizerJson?.model;
  if (!model || typeof model !== "object") fail("tokenizer.json has no model");
  if (model.type !== undefined && model.type !== "BPE") fail(`model type is ${String(model.type)}, expected BPE`);
  if (!model.vocab || typeof model.vocab !== "object") fail("model.vocab is missing");
  const added: AddedToken[] = Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens : [];
  let size = 0;
  const ids: [string, number][] = Object.entries(model.vocab as Record<string, number>);
  for (const [tok, id] of ids) if (!Number.isInteger(id) || id < 0) fail(`vocab entry '${tok}' has id ${String(id)}`); else size = Math.max(size, id + 1);
  for (const a of added) if (!Number.isInteger(a.id) || a.id < 0 || typeof a.content !== "string") fail(`bad added token ${JSON.stringify(a)}`); else size = Math.max(size, a.id + 1);

  if (size > 1 << 24) fail(`token ids reach ${size - 1}, more than a vocabulary of 2^24 tokens`);
  const tokens: (string | undefined)[] = new Array(size).fill(undefined);
  const types = new Int32Array(size).fill(TokenType.UNUSED);
  for (const [tok, id] of ids) { tokens[id] = tok; types[id] = TokenType.NORMAL; }
  for (const a of added) { tokens[a.id] = a.content; types[a.id] = a.special ? TokenType.CONTROL : TokenType.USER_DEFINED; }
  const tokenList = tokens.map((t, i) => t ?? `[PAD${i}]`);

  const merges: string[] = (Array.isArray(model.merges) ? model.merges : []).map((m: unknown, i: number) =>
    typeof m === "string" ? m : Array.isArray(m) && m.length === 2 ? `${m[0]} ${m[1]}` : fail(`merge #${i} is neither "a b" nor [a, b]`));

  const out: GGUFMetadataEntry[] = [
    { key: "tokenizer.ggml.model", type: "string", value: "gpt2" },
    { key: "tokenizer.ggml.pre", type: "string", value: opts.pre },
    { key: "tokenizer.ggml.tokens", type: "array", value: { itemType: "string", items: tokenList } },
    { key: "tokenizer.ggml.token_type", type: "array", value: { itemType: "i32", items: types } },
    { key: "tokenizer.ggml.merges", type: "array", value: { itemType: "string", items: merges } },
  ];
  const idOf = new Map<string, number>();
  tokenList.forEach((t, i) => { if (!idOf.has(t) || types[i] !== TokenType.UNUSED) idOf.set(t, i); });
  for (const a of added) idOf.set(a.content, a.id); // added tokens win over same-text vocab entries
  const cfg = tokenizerConfig ?? {};
  const special: [string, unknown][] = [["bos", cfg.bos_token], ["eos", cfg.eos_token], ["unknown", cfg.unk_token ?? model.unk_token], ["padding", cfg.pad_token]];
  for (const [name, t] of special) {
    const text = tokenText(t);
    const id = text === undefined ? undefined : idOf.get(text);
    if (id !== undefined) out.push({ key: `tokenizer.ggml.${name}_token_id`, type: "u32", value: id });
  }
  if (typeof cfg.add_bos_token === "boolean") out.push({ key: "tokenizer.ggml.add_bos_token", type: "bool", value: cfg.add_bos_token });
  if (typeof cfg.add_eos_token === "boolean") out.push({ key: "tokenizer.ggml.add_eos_token", type: "bool", value: cfg.add_eos_token });
  let template: unknown = cfg.chat_template;
  if (Array.isArray(template)) template = template.find((t: Json) => t?.name === "default")?.template;
  if (typeof template === "string") out.push({ key: "tokenizer.chat_template", type: "string", value: template });
  return out;
}

// Split regexes per llama.cpp pre-tokenizer name (deepseek-spec §4.2), applied in order, each "Isolated".
const QWEN2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const PRE_SPLITS: Record<string, string[]> = {
  "deepseek-coder": ["[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"],
  "deepseek-v3": [
    "\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  ],
  "deepseek-r1-qwen": [QWEN2],
  qwen2: [QWEN2],
  "llama-bpe": ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"],
};

type MetaIn = Map<string, GGUFEntry> | readonly GGUFMetadataEntry[];

/**
 * A Hugging Face tokenizer.json and tokenizer_config.json from GGUF tokenizer metadata. NORMAL tokens form
 * model.vocab; CONTROL and USER_DEFINED tokens become added_tokens (special: CONTROL); UNUSED gaps are dropped.
 */
export function ggufToTokenizer(metadata: MetaIn): { tokenizerJson: Json; tokenizerConfig: Json } {
  const meta = metadata instanceof Map ? metadata : new Map(metadata.map((e) => [e.key, { type: e.type, value: e.value } as GGUFEntry]));
  const get = (k: string): GGUFEntry | undefined => meta.get(k);
  const str = (k: string): string | undefined => { const e = get(k); return e === undefined ? undefined : e.type === "string" ? (e.value as string) : fail(`${k} must be a string`); };
  const arr = (k: string, what: string): ArrayLike<unknown> => {
    const e = get(k);
    if (!e) return fail(`missing ${k}`);
    if (e.type !== "array") fail(`${k} must be an array of ${what}`);
    return (e.value as GGUFArray).items as ArrayLike<unknown>;
  };
  const id = (k: string): number | undefined => { const e = get(k); return e && typeof e.value === "number" && Number.isInteger(e.value) ? e.value : undefined; };
  const bool = (k: string): boolean | undefined => { const e = get(k); return e && e.type === "bool" ? (e.value as boolean) : undefined; };

  const kind = str("tokenizer.ggml.model");
  if (kind !== "gpt2") fail(`tokenizer.ggml.model is ${String(kind)}, expected gpt2 (byte-level BPE)`);
  const tokens = arr("tokenizer.ggml.tokens", "strings");
  const typesE = get("tokenizer.ggml.token_type");
  const types = typesE ? arr("tokenizer.ggml.token_type", "integers") : undefined;
  if (types && types.length !== tokens.length) fail(`token_type has ${types.length} entries, tokens has ${tokens.length}`);
  const merges = get("tokenizer.ggml.merges") ? Array.from(arr("tokenizer.ggml.merges", "strings")) : [];

  const vocab: Record<string, number> = {};
  const added: AddedToken[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (typeof t !== "string") fail(`token ${i} is not a string`);
    const ty = types ? Number(types[i]) : TokenType.NORMAL;
    if (ty === TokenType.UNUSED) continue;
    if (ty === TokenType.CONTROL || ty === TokenType.USER_DEFINED) {
      const special = ty === TokenType.CONTROL;
      added.push({ id: i, content: t as string, single_word: false, lstrip: false, rstrip: false, normalized: !special, special });
    } else vocab[t as string] = i;
  }
  for (const m of merges) if (typeof m !== "string") fail("merges must be strings");

  const textOf = (k: string): string | null => { const i = id(k); return i !== undefined && i < tokens.length ? (tokens[i] as string) : null; };
  const bos = textOf("tokenizer.ggml.bos_token_id"), eos = textOf("tokenizer.ggml.eos_token_id");
  const addBos = bool("tokenizer.ggml.add_bos_token"), addEos = bool("tokenizer.ggml.add_eos_token");
  const pre = str("tokenizer.ggml.pre") ?? "default";
  const splits = PRE_SPLITS[pre];
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: !splits };
  const preTokenizer = splits
    ? { type: "Sequence", pretokenizers: [...splits.map((r) => ({ type: "Split", pattern: { Regex: r }, behavior: "Isolated", invert: false })), byteLevel] }
    : byteLevel;

  let postProcessor: Json = { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true };
  const head = addBos && bos !== null ? [bos] : [], tail = addEos && eos !== null ? [eos] : [];
  if (head.length || tail.length) {
    const sp = (t: string) => ({ SpecialToken: { id: t, type_id: 0 } }), seq = (s: string) => ({ Sequence: { id: s, type_id: 0 } });
    const specials: Json = {};
    if (head.length) specials[bos!] = { id: bos, ids: [id("tokenizer.ggml.bos_token_id")], tokens: [bos] };
    if (tail.length) specials[eos!] = { id: eos, ids: [id("tokenizer.ggml.eos_token_id")], tokens: [eos] };
    postProcessor = {
      type: "TemplateProcessing", single: [...head.map(sp), seq("A"), ...tail.map(sp)],
      pair: [...head.map(sp), seq("A"), ...tail.map(sp), ...head.map(sp), seq("B"), ...tail.map(sp)], special_tokens: specials,
    };
  }

  const tokenizerJson: Json = {
    version: "1.0", truncation: null, padding: null, added_tokens: added, normalizer: null,
    pre_tokenizer: preTokenizer, post_processor: postProcessor,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE", dropout: null, unk_token: textOf("tokenizer.ggml.unknown_token_id"), continuing_subword_prefix: null,
      end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: pre === "llama-bpe", vocab, merges,
    },
  };
  const tokenizerConfig: Json = { tokenizer_class: "PreTrainedTokenizerFast", clean_up_tokenization_spaces: false };
  if (addBos !== undefined) tokenizerConfig.add_bos_token = addBos;
  if (addEos !== undefined) tokenizerConfig.add_eos_token = addEos;
  for (const [name, key] of [["bos_token", "bos"], ["eos_token", "eos"], ["unk_token", "unknown"], ["pad_token", "padding"]] as const) {
    const t = textOf(`tokenizer.ggml.${key}_token_id`);
    if (t !== null) tokenizerConfig[name] = t;
  }
  const tmpl = str("tokenizer.chat_template");
  if (tmpl !== undefined) tokenizerConfig.chat_template = tmpl;
  return { tokenizerJson, tokenizerConfig };
}
