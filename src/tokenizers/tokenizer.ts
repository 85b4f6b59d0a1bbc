// Hugging Face tokenizers (tokenizer.json + tokenizer_config.json), as transformers' PreTrainedTokenizerFast uses them.
// @huggingface/tokenizers does the splitting and BPE; this file is the glue transformers adds on top:
//  - special tokens by name (bos/eos/pad/unk from tokenizer_config.json, overridden by special_tokens_map.json);
//  - BOS/EOS: LlamaTokenizerFast (every DeepSeek tokenizer) rebuilds the post-processor from add_bos_token /
//    add_eos_token (defaults true / false), so encode() prepends BOS and never appends EOS; other classes use the
//    post_processor in tokenizer.json as it is;
//  - decoding exactly as the Rust `tokenizers` crate does for a ByteLevel decoder: each token's bytes (a token whose
//    characters are not all in the GPT-2 byte alphabet, e.g. "<｜User｜>", stands for its own UTF-8), concatenated and
//    decoded once with U+FFFD for invalid sequences; then clean_up_tokenization_spaces when the config asks for it
//    (transformers' default is false since v4.45);
//  - padding, truncation, chat templates (chat_template.ts), streaming decode (stream_decoder.ts).
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import { FathomError, FormatError } from "../core/errors.js";
import { writeTextAtomic } from "../io/atomic.js";
import { applyChatTemplate, type ChatMessage, type ChatTemplateOptions } from "./chat_template.js";
import { StreamDecoder, cleanUpTokenization, type StreamDecoderOptions } from "./stream_decoder.js";
import { CHAR_TO_BYTE } from "./byte_level.js";

type Json = Record<string, any>;

export interface EncodeOptions {
  /** Add BOS/EOS as the tokenizer does by default (default true). Special-token text inside `text` is always matched. */
  addSpecialTokens?: boolean;
}
export interface DecodeOptions {
  /** Drop special tokens (added tokens flagged `special`, plus the named bos/eos/pad/unk tokens). Default false. */
  skipSpecialTokens?: boolean;
  /** Override tokenizer_config's clean_up_tokenization_spaces (" ." → "." and similar). */
  cleanUpTokenizationSpaces?: boolean;
}
export interface BatchEncodeOptions extends EncodeOptions {
  /** true / "longest": pad to the longest sequence; "max_length": pad to maxLength; false (default): no padding. */
  padding?: boolean | "longest" | "max_length";
  /** Length for padding "max_length" (default: tokenizer_config model_max_length) and for truncation. */
  maxLength?: number;
  /** Cut sequences longer than maxLength (on truncation_side from tokenizer_config, default right). Default false. */
  truncation?: boolean;
  /** Where padding goes (default: tokenizer_config padding_side, else the class default: "left" for LlamaTokenizerFast, "right" otherwise). */
  paddingSide?: "left" | "right";
}
export interface BatchEncoding {
  inputIds: number[][];
  attentionMask: number[][];
}

const OP = "tokenizer";
const NAMED_SPECIAL = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"] as const;
/** Classes whose transformers implementation builds the post-processor from add_bos_token/add_eos_token. */
const FLAG_CLASSES = /^(Llama|CodeLlama|Gemma|Gemma2)Tokenizer(Fast)?$/;
/** Classes whose transformers implementation pads on the left by default (class attribute padding_side). */
const LEFT_PAD_CLASSES = /^(Llama|CodeLlama)Tokenizer(Fast)?$/;

// ---------------------------------------------------------------------------------------------------------------
// GPT-2 byte alphabet: bytes 33–126, 161–172, 174–255 keep their code point; the other 68 map to 256, 257, ...

const utf8 = new TextEncoder();

/** The bytes a ByteLevel decoder gives for one token (the Rust crate's rule). */
function byteLevelBytes(token: string): Uint8Array {
  const out: number[] = [];
  for (const ch of token) {
    const b = CHAR_TO_BYTE.get(ch.codePointAt(0)!);
    if (b === undefined) return utf8.encode(token);
    out.push(b);
  }
  return Uint8Array.from(out);
}

/** A token in tokenizer_config / special_tokens_map: a string, an AddedToken object {content, ...}, or null. */
function tokenText(v: unknown, where: string): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "string") return v;
  if (typeof v === "object" && typeof (v as Json).content === "string") return (v as Json).content;
  throw new FormatError(OP, `${where}: expected a token string or {"content": ...}, got ${JSON.stringify(v)}`);
}

function parseJsonObject(text: string, file: string): Json {
  if (text.trim() === "") throw new FormatError(OP, `${file} is empty`);
  let v: unknown;
  try { v = JSON.parse(text); } catch (e) { throw new FormatError(OP, `${file} is not valid JSON: ${(e as Error).message}`); }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FormatError(OP, `${file}: expected a JSON object`);
  return v as Json;
}

function readJsonFile(path: string): { text: string; json: Json } {
  let text: string;
  try { text = readFileSync(path, "utf8"); } catch (e) { throw new FathomError(OP, `cannot read ${path}: ${(e as Error).message}`); }
  return { text, json: parseJsonObject(text, path) };
}

interface Sources {
  /** Names used in error messages. */
  jsonName: string;
  configName: string;
  /** tokenizer.json as read (written back verbatim by save()), when it came as text. */
  jsonText?: string;
  /** special_tokens_map.json, whose entries override tokenizer_config's. */
  specialTokensMap?: Json;
  /** chat_template.jinja / chat_template.json beside the config (transformers prefers them to the config's). */
  chatTemplate?: unknown;
}

export class Tokenizer {
  /** tokenizer.json as loaded. */
  readonly tokenizerJson: Json;
  /** tokenizer_config.json as loaded, with special_tokens_map.json's entries merged in. */
  readonly tokenizerConfig: Json;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  /** Whether encode() prepends BOS by default. */
  readonly addBosToken: boolean;
  /** Whether encode() appends EOS by default (false for every DeepSeek tokenizer). */
  readonly addEosToken: boolean;
  /** The chat template: a string, or named templates ({default, tool_use, ...}); null when the tokenizer has none. */
  readonly chatTemplates: string | Readonly<Record<string, string>> | null;
  /** One more than the largest token id (vocabulary plus added tokens): len(tokenizer) in transformers. */
  readonly vocabSize: number;
  /** transformers' all_special_ids: the ids of bos/eos/unk/sep/pad/cls/mask and additional_special_tokens. */
  readonly allSpecialIds: readonly number[];
  readonly paddingSide: "left" | "right";
  readonly truncationSide: "left" | "right";
  readonly modelMaxLength: number | null;
  readonly cleanUpTokenizationSpaces: boolean;
  /** The ids decode(..., {skipSpecialTokens: true}) drops. */
  readonly specialIds: ReadonlySet<number>;

  private readonly hf: HFTokenizer;
  private readonly jsonText: string | undefined;
  /** "flags": BOS/EOS from addBosToken/addEosToken; "post_processor": tokenizer.json's post-processor adds them. */
  private readonly specialMode: "flags" | "post_processor";
  private readonly byteLevel: boolean;
  private readonly idToTok: (string | undefined)[];
  private readonly bytesCache: (Uint8Array | undefined)[] = [];

  private constructor(json: Json, config: Json, src: Sources) {
    const { jsonName, configName } = src;
    if (typeof json.model !== "object" || json.model === null) throw new FormatError(OP, `${jsonName} has no "model" object`);
    if (json.added_tokens !== undefined && !Array.isArray(json.added_tokens)) throw new FormatError(OP, `${jsonName}: "added_tokens" is not a list`);
    const added: Json[] = (json.added_tokens ?? []) as Json[];
    added.forEach((a, i) => {
      if (!a || !Number.isInteger(a.id) || a.id < 0 || typeof a.content !== "string") throw new FormatError(OP, `${jsonName}: added_tokens[${i}] needs an integer "id" and a string "content"`);
    });

    // special_tokens_map.json wins over tokenizer_config.json (transformers' from_pretrained does the same).
    const cfg: Json = { ...config, ...(src.specialTokensMap ?? {}) };
    if (src.chatTemplate !== undefined) cfg.chat_template = src.chatTemplate;
    this.tokenizerJson = json;
    this.tokenizerConfig = cfg;
    this.jsonText = src.jsonText;

    // id → token over the model vocabulary and the added tokens (added ones win).
    const idToTok: (string | undefined)[] = [];
    const vocab = json.model.vocab;
    if (Array.isArray(vocab)) vocab.forEach((e: unknown, i: number) => { idToTok[i] = Array.isArray(e) ? String(e[0]) : String(e); });
    else if (vocab && typeof vocab === "object") {
      for (const [t, id] of Object.entries(vocab as Record<string, number>)) {
        if (!Number.isInteger(id) || id < 0) throw new FormatError(OP, `${jsonName}: model.vocab["${t}"] has id ${JSON.stringify(id)}`);
        idToTok[id] = t;
      }
    } else throw new FormatError(OP, `${jsonName}: model.vocab is missing`);
    for (const a of added) idToTok[a.id] = a.content;
    const tokToId = new Map<string, number>();
    idToTok.forEach((t, i) => { if (t !== undefined && !tokToId.has(t)) tokToId.set(t, i); });
    for (const a of added) tokToId.set(a.content, a.id);
    this.idToTok = idToTok;
    this.vocabSize = idToTok.length;

    // Named special tokens. transformers registers each as a special added token, so a named token found only in
    // the model vocabulary is matched in text and skipped by skip_special_tokens too.
    const additional: string[] = [];
    if (cfg.additional_special_tokens !== undefined && cfg.additional_special_tokens !== null) {
      if (!Array.isArray(cfg.additional_special_tokens)) throw new FormatError(OP, `${configName}: additional_special_tokens is not a list`);
      cfg.additional_special_tokens.forEach((t: unknown, i: number) => additional.push(tokenText(t, `${configName}: additional_special_tokens[${i}]`)!));
    }
    const named: Record<string, string | null> = {};
    for (const k of NAMED_SPECIAL) named[k] = tokenText(cfg[k], `${configName}: ${k}`);
    const idOf = (field: string, text: string | null, required: boolean): number | null => {
      if (text === null) return null;
      const id = tokToId.get(text);
      if (id === undefined) {
        if (required) throw new FathomError(OP, `${configName}: ${field} ${JSON.stringify(text)} is not in the vocabulary of ${jsonName}`);
        return null;
      }
      return id;
    };
    this.bosToken = named.bos_token; this.bosTokenId = idOf("bos_token", named.bos_token, true);
    this.eosToken = named.eos_token; this.eosTokenId = idOf("eos_token", named.eos_token, true);
    this.padToken = named.pad_token; this.padTokenId = idOf("pad_token", named.pad_token, true);
    this.unkToken = named.unk_token; this.unkTokenId = idOf("unk_token", named.unk_token, false);
    const allSpecial: number[] = [];
    const addedIds = new Set(added.map((a) => a.id));
    const extraAdded: Json[] = [];
    for (const [field, text] of [...NAMED_SPECIAL.map((k) => [k, named[k]] as const), ...additional.map((t) => ["additional_special_tokens", t] as const)]) {
      if (text === null) continue;
      const id = tokToId.get(text);
      if (id === undefined) continue;
      if (!allSpecial.includes(id)) allSpecial.push(id);
      if (!addedIds.has(id) && field !== "unk_token") {
        extraAdded.push({ id, content: text, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
        addedIds.add(id);
      }
    }
    this.allSpecialIds = allSpecial;
    const special = new Set<number>(allSpecial);
    for (const a of added) if (a.special) special.add(a.id);
    this.specialIds = special;

    // The splitting/BPE engine. It gets a config of only the fields whose meaning matches the Rust crate's.
    // (A shallow copy: the caller's object is never modified.)
    const engineJson = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...json, added_tokens: [...added, ...extraAdded] };
    try {
      this.hf = new HFTokenizer(engineJson, { additional_special_tokens: additional, clean_up_tokenization_spaces: false });
    } catch (e) {
      throw new FormatError(OP, `${jsonName}: cannot build the tokenizer: ${(e as Error).message}`);
    }

    // BOS/EOS policy.
    const cls = typeof cfg.tokenizer_class === "string" ? cfg.tokenizer_class : "";
    const flagClass = FLAG_CLASSES.test(cls);
    if (flagClass || typeof cfg.add_bos_token === "boolean" || typeof cfg.add_eos_token === "boolean") {
      this.specialMode = "flags";
      this.addBosToken = typeof cfg.add_bos_token === "boolean" ? cfg.add_bos_token : flagClass;
      this.addEosToken = typeof cfg.add_eos_token === "boolean" ? cfg.add_eos_token : false;
      if (this.addBosToken && this.bosTokenId === null) throw new FathomError(OP, `${configName}: add_bos_token is true but there is no bos_token`);
      if (this.addEosToken && this.eosTokenId === null) throw new FathomError(OP, `${configName}: add_eos_token is true but there is no eos_token`);
    } else {
      this.specialMode = "post_processor";
      const empty = this.hf.encode("", { add_special_tokens: true }).ids;
      this.addBosToken = this.bosTokenId !== null && empty[0] === this.bosTokenId;
      this.addEosToken = this.eosTokenId !== null && empty.length > 0 && empty[empty.length - 1] === this.eosTokenId;
    }

    const side = (field: string, dflt: "left" | "right"): "left" | "right" => {
      const v = cfg[field];
      if (v === undefined || v === null) return dflt;
      if (v !== "left" && v !== "right") throw new FormatError(OP, `${configName}: ${field} must be "left" or "right", got ${JSON.stringify(v)}`);
      return v;
    };
    this.paddingSide = side("padding_side", LEFT_PAD_CLASSES.test(cls) ? "left" : "right");
    this.truncationSide = side("truncation_side", "right");
    this.modelMaxLength = Number.isInteger(cfg.model_max_length) && cfg.model_max_length < 1e15 ? cfg.model_max_length : null;
    this.cleanUpTokenizationSpaces = cfg.clean_up_tokenization_spaces === true;

    const ct = cfg.chat_template;
    if (ct === undefined || ct === null) this.chatTemplates = null;
    else if (typeof ct === "string") this.chatTemplates = ct;
    else if (Array.isArray(ct)) {
      const named: Record<string, string> = {};
      ct.forEach((e: Json, i: number) => {
        if (!e || typeof e.name !== "string" || typeof e.template !== "string") throw new FormatError(OP, `${configName}: chat_template[${i}] needs string "name" and "template"`);
        named[e.name] = e.template;
      });
      this.chatTemplates = named;
    } else if (typeof ct === "object" && Object.values(ct).every((v) => typeof v === "string")) this.chatTemplates = { ...(ct as Record<string, string>) };
    else throw new FormatError(OP, `${configName}: chat_template must be a string or a list of {name, template}`);

    const dec = json.decoder;
    this.byteLevel = !!dec && (dec.type === "ByteLevel" || (dec.type === "Sequence" && Array.isArray(dec.decoders) && dec.decoders.length > 0 && dec.decoders.every((d: Json) => d?.type === "ByteLevel")));
  }

  // -------------------------------------------------------------------------------------------------------------
  // Loading and saving

  /**
   * Loads tokenizer.json, tokenizer_config.json (optional; defaults as transformers') and special_tokens_map.json
   * (optional) from a folder. chat_template.jinja or chat_template.json there, if any, replaces the config's template.
   */
  static fromPretrained(dir: string): Tokenizer {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new FathomError(OP, `${dir}: no such folder`);
    const jsonPath = join(dir, "tokenizer.json");
    if (!existsSync(jsonPath)) throw new FathomError(OP, `${dir}: missing tokenizer.json (the folder has no Hugging Face fast tokenizer)`);
    const { text, json } = readJsonFile(jsonPath);
    const cfgPath = join(dir, "tokenizer_config.json");
    const config = existsSync(cfgPath) ? readJsonFile(cfgPath).json : {};
    const stmPath = join(dir, "special_tokens_map.json");
    const specialTokensMap = existsSync(stmPath) ? readJsonFile(stmPath).json : undefined;
    let chatTemplate: unknown;
    const jinjaPath = join(dir, "chat_template.jinja");
    const ctJsonPath = join(dir, "chat_template.json");
    if (existsSync(jinjaPath)) chatTemplate = readFileSync(jinjaPath, "utf8");
    else if (existsSync(ctJsonPath)) {
      chatTemplate = readJsonFile(ctJsonPath).json.chat_template;
      if (typeof chatTemplate !== "string") throw new FormatError(OP, `${ctJsonPath}: "chat_template" is not a string`);
    }
    return new Tokenizer(json, config, { jsonName: jsonPath, configName: existsSync(cfgPath) ? cfgPath : `${dir} (no tokenizer_config.json)`, jsonText: text, specialTokensMap, chatTemplate });
  }

  /** Builds a tokenizer from tokenizer.json and tokenizer_config.json contents (objects or JSON text). */
  static fromJSON(tokenizerJson: Json | string, tokenizerConfig?: Json | string): Tokenizer {
    let jsonText: string | undefined;
    let json: Json;
    if (typeof tokenizerJson === "string") { jsonText = tokenizerJson; json = parseJsonObject(tokenizerJson, "tokenizer.json"); }
    else if (typeof tokenizerJson === "object" && tokenizerJson !== null && !Array.isArray(tokenizerJson)) json = tokenizerJson;
    else throw new FormatError(OP, "tokenizer.json: expected a JSON object");
    let config: Json = {};
    if (typeof tokenizerConfig === "string") config = parseJsonObject(tokenizerConfig, "tokenizer_config.json");
    else if (tokenizerConfig !== undefined && tokenizerConfig !== null) {
      if (typeof tokenizerConfig !== "object" || Array.isArray(tokenizerConfig)) throw new FormatError(OP, "tokenizer_config.json: expected a JSON object");
      config = tokenizerConfig;
    }
    return new Tokenizer(json, config, { jsonName: "tokenizer.json", configName: "tokenizer_config.json", jsonText });
  }

  /** Writes tokenizer.json and tokenizer_config.json (with special_tokens_map.json merged in) into `dir`, atomically. */
  save(dir: string): void {
    try { mkdirSync(dir, { recursive: true }); } catch (e) { throw new FathomError(OP, `${dir}: cannot create folder: ${(e as Error).message}`); }
    writeTextAtomic(join(dir, "tokenizer.json"), this.jsonText ?? JSON.stringify(this.tokenizerJson, null, 2), OP);
    writeTextAtomic(join(dir, "tokenizer_config.json"), JSON.stringify(this.tokenizerConfig, null, 2) + "\n", OP);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Encoding and decoding

  encode(text: string, { addSpecialTokens = true }: EncodeOptions = {}): number[] {
    if (typeof text !== "string") throw new FathomError(OP, `encode: expected a string, got ${text === null ? "null" : typeof text}`);
    if (this.specialMode === "post_processor") return this.hf.encode(text, { add_special_tokens: addSpecialTokens }).ids;
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    if (!addSpecialTokens) return ids;
    if (this.addBosToken) ids.unshift(this.bosTokenId!);
    if (this.addEosToken) ids.push(this.eosTokenId!);
    return ids;
  }

  /** The token strings of `text` (byte-level strings such as "ĠHello"), without BOS/EOS. */
  tokenize(text: string): string[] {
    return this.convertIdsToTokens(this.encode(text, { addSpecialTokens: false }));
  }

  /**
   * Text of `ids`. Ids that are not in the vocabulary contribute nothing (as in the Rust crate: a model's padded
   * embedding rows have no token); negative or non-integer ids are an error.
   */
  decode(ids: ArrayLike<number>, { skipSpecialTokens = false, cleanUpTokenizationSpaces }: DecodeOptions = {}): string {
    let text: string;
    if (this.byteLevel) {
      const parts: Uint8Array[] = [];
      let n = 0;
      for (let i = 0; i < ids.length; i++) {
        const b = this.tokenBytes(ids[i], skipSpecialTokens);
        if (b) { parts.push(b); n += b.length; }
      }
      const all = new Uint8Array(n);
      let off = 0;
      for (const p of parts) { all.set(p, off); off += p.length; }
      text = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }).decode(all);
    } else {
      const kept: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        const id = this.checkId(ids[i]);
        if (this.idToTok[id] !== undefined && !(skipSpecialTokens && this.specialIds.has(id))) kept.push(id);
      }
      text = kept.length ? this.hf.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "";
    }
    return (cleanUpTokenizationSpaces ?? this.cleanUpTokenizationSpaces) ? cleanUpTokenization(text) : text;
  }

  batchDecode(batch: ArrayLike<number>[], o: DecodeOptions = {}): string[] {
    return Array.from(batch, (ids) => this.decode(ids, o));
  }

  /**
   * Encodes several texts, optionally truncated and padded into a rectangle. The attention mask is 1 on tokens and
   * 0 on padding.
   */
  batchEncode(texts: readonly string[], o: BatchEncodeOptions = {}): BatchEncoding {
    if (!Array.isArray(texts)) throw new FathomError(OP, "batchEncode: expected a list of strings");
    const padding = o.padding === true ? "longest" : o.padding === false || o.padding === undefined ? null : o.padding;
    if (padding !== null && padding !== "longest" && padding !== "max_length") throw new FathomError(OP, `batchEncode: padding must be true, false, "longest" or "max_length", got ${JSON.stringify(o.padding)}`);
    const side = o.paddingSide ?? this.paddingSide;
    if (side !== "left" && side !== "right") throw new FathomError(OP, `batchEncode: paddingSide must be "left" or "right", got ${JSON.stringify(side)}`);
    let maxLength = o.maxLength;
    if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 0)) throw new FathomError(OP, `batchEncode: maxLength must be a non-negative integer, got ${maxLength}`);
    if (maxLength === undefined && (padding === "max_length" || o.truncation)) {
      if (this.modelMaxLength === null) throw new FathomError(OP, `batchEncode: ${padding === "max_length" ? 'padding "max_length"' : "truncation"} needs maxLength (the tokenizer has no model_max_length)`);
      maxLength = this.modelMaxLength;
    }
    let seqs = texts.map((t) => this.encode(t, { addSpecialTokens: o.addSpecialTokens ?? true }));
    if (o.truncation && maxLength !== undefined) {
      const m = maxLength;
      seqs = seqs.map((s) => (s.length <= m ? s : this.truncationSide === "right" ? s.slice(0, m) : s.slice(s.length - m)));
    }
    if (padding === null) return { inputIds: seqs, attentionMask: seqs.map((s) => s.map(() => 1)) };
    if (this.padTokenId === null) throw new FathomError(OP, "batchEncode: padding needs a pad token, and this tokenizer has none (set pad_token in tokenizer_config.json)");
    const target = padding === "max_length" ? Math.max(maxLength!, 0) : Math.max(0, ...seqs.map((s) => s.length));
    const pad = this.padTokenId;
    const inputIds: number[][] = [];
    const attentionMask: number[][] = [];
    for (const s of seqs) {
      const n = Math.max(0, target - s.length);   // sequences longer than the target (no truncation) stay as they are
      const fill = new Array<number>(n).fill(pad);
      const zeros = new Array<number>(n).fill(0);
      const ones = new Array<number>(s.length).fill(1);
      inputIds.push(side === "left" ? [...fill, ...s] : [...s, ...fill]);
      attentionMask.push(side === "left" ? [...zeros, ...ones] : [...ones, ...zeros]);
    }
    return { inputIds, attentionMask };
  }

  /** A decoder for generated tokens: push(id) returns only newly completed text (see stream_decoder.ts). */
  streamDecoder(o: StreamDecoderOptions = {}): StreamDecoder {
    return new StreamDecoder(this, o);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Vocabulary

  convertIdsToTokens(ids: ArrayLike<number>, { skipSpecialTokens = false }: { skipSpecialTokens?: boolean } = {}): string[] {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = this.checkId(ids[i]);
      const t = this.idToTok[id];
      if (t === undefined) throw new FathomError(OP, `token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      if (!(skipSpecialTokens && this.specialIds.has(id))) out.push(t);
    }
    return out;
  }

  tokenToId(token: string): number | null {
    return this.hf.token_to_id(token) ?? null;
  }

  idToToken(id: number): string | null {
    return Number.isInteger(id) && id >= 0 ? this.idToTok[id] ?? null : null;
  }

  /** Whether decode(..., {skipSpecialTokens: true}) drops this id. */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** The template applyChatTemplate uses: a named one, the default, or null when there is none. */
  get chatTemplate(): string | null {
    const t = this.chatTemplates;
    if (t === null || typeof t === "string") return t;
    return t.default ?? null;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Chat templates

  /** Renders `messages` with the tokenizer's chat template (or Fathom's fallback; see chat_template.ts). */
  applyChatTemplate(messages: readonly ChatMessage[], o: ChatTemplateOptions & { tokenize: true }): number[];
  applyChatTemplate(messages: readonly ChatMessage[], o?: ChatTemplateOptions & { tokenize?: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], o?: ChatTemplateOptions): string | number[];
  applyChatTemplate(messages: readonly ChatMessage[], o: ChatTemplateOptions = {}): string | number[] {
    const text = applyChatTemplate(this, messages, o);
    // The template writes BOS itself, so tokenizing adds no special tokens (as transformers does).
    return o.tokenize ? this.encode(text, { addSpecialTokens: false }) : text;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Internals shared with stream_decoder.ts

  /** @internal Whether decoding is byte-level (bytes per token, then one UTF-8 decode). */
  get isByteLevel(): boolean { return this.byteLevel; }

  /** @internal The bytes of one token for a byte-level decoder; null when it contributes nothing. */
  tokenBytes(id: number, skipSpecialTokens: boolean): Uint8Array | null {
    this.checkId(id);
    if (skipSpecialTokens && this.specialIds.has(id)) return null;
    let b = this.bytesCache[id];
    if (b === undefined) {
      const t = this.idToTok[id];
      if (t === undefined) return null;
      b = this.bytesCache[id] = byteLevelBytes(t);
    }
    return b;
  }

  private checkId(id: number): number {
    if (!Number.isInteger(id) || id < 0) throw new FathomError(OP, `token ids must be non-negative integers, got ${String(id)}`);
    return id;
  }
}
