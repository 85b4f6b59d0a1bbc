// Fill-in-the-middle prompts for DeepSeek-Coder (and V2/V3, whose tokenizers keep the same tokens), PSM order as in
// the DeepSeek-Coder README ("Code Insertion"):  <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix <｜fim▁end｜>
// The model then writes the middle and ends it with EOS. llama.cpp names the same tokens FIM_PRE / FIM_SUF / FIM_MID.
import { FathomError } from "../core/errors.js";
import type { Tokenizer } from "./tokenizer.js";

export const FIM_BEGIN = "<｜fim▁begin｜>";
export const FIM_HOLE = "<｜fim▁hole｜>";
export const FIM_END = "<｜fim▁end｜>";

export interface FimPrompt {
  /** The prompt text (without BOS; `ids` has it when the tokenizer adds one). */
  text: string;
  ids: number[];
}

/** Checks that the tokenizer has the three FIM tokens as single added tokens; returns their ids. */
export function fimTokenIds(tok: Tokenizer): { begin: number; hole: number; end: number } {
  const get = (t: string): number => {
    const id = tok.tokenToId(t);
    const ids = id === null ? [] : tok.encode(t, { addSpecialTokens: false });
    if (id === null || ids.length !== 1 || ids[0] !== id) {
      throw new FathomError("fim", `the tokenizer has no ${t} token: fill-in-the-middle needs a DeepSeek-Coder (or V2/V3) tokenizer`);
    }
    return id;
  };
  return { begin: get(FIM_BEGIN), hole: get(FIM_HOLE), end: get(FIM_END) };
}

/** The FIM prompt for code between `prefix` and `suffix`, as text and as ids (BOS first, as the tokenizer adds it). */
export function buildFimPrompt(tok: Tokenizer, prefix: string, suffix: string): FimPrompt {
  if (typeof prefix !== "string" || typeof suffix !== "string") throw new FathomError("fim", "prefix and suffix must be strings");
  fimTokenIds(tok);
  const text = FIM_BEGIN + prefix + FIM_HOLE + suffix + FIM_END;
  return { text, ids: tok.encode(text) };
}

/** Special-looking tokens that end a FIM completion: DeepSeek's <｜…｜> tokens (EOS among them) and <|EOT|>. */
const STOP = /<｜[^｜\n]{1,64}｜>|<\|EOT\|>|<\|endoftext\|>/u;

/**
 * The middle from a FIM generation: text after the last <｜fim▁end｜> when the prompt was echoed, cut at the first
 * special token (EOS, <|EOT|>, another FIM token, ...) and at any of `stop`.
 */
export function extractFimMiddle(generatedText: string, { stop = [] }: { stop?: readonly string[] } = {}): string {
  if (typeof generatedText !== "string") throw new FathomError("fim", "generatedText must be a string");
  let s = generatedText;
  const echo = s.lastIndexOf(FIM_END);
  if (echo >= 0) s = s.slice(echo + FIM_END.length);
  let cut = s.search(STOP);
  if (cut < 0) cut = s.length;
  for (const t of stop) {
    if (t === "") continue;
    const i = s.indexOf(t);
    if (i >= 0 && i < cut) cut = i;
  }
  return s.slice(0, cut);
}
