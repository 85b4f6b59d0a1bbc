// Incremental detokenization for generation: push(id) returns only the text that is complete, flush() the rest.
// The concatenation of everything returned equals tokenizer.decode(allIds) with the same options, for any ids.
//
// Byte-level tokenizers (all DeepSeek ones): each token's bytes go through one streaming UTF-8 decoder, which holds
// the bytes of a character split across tokens (a Chinese character or an emoji is often 2–4 byte tokens) until the
// character completes, and turns invalid bytes into U+FFFD exactly where a one-shot decode would (WHATWG streaming
// decode gives the same text as decoding all bytes at once). Other decoders: the whole sequence is decoded again on
// each push and the new suffix is returned once it does not end in U+FFFD (O(n²), but correct).
//
// clean_up_tokenization_spaces (off for DeepSeek) rewrites " ." to "." and the like, which a later token can
// trigger, so when it is on the last characters are held back until no pattern can straddle the cut.
import type { Tokenizer } from "./tokenizer.js";

/** transformers' clean_up_tokenization (PreTrainedTokenizerBase.clean_up_tokenization). */
export function cleanUpTokenization(s: string): string {
  return s.replaceAll(" .", ".").replaceAll(" ?", "?").replaceAll(" !", "!").replaceAll(" ,", ",").replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't").replaceAll(" 'm", "'m").replaceAll(" 's", "'s").replaceAll(" 've", "'ve").replaceAll(" 're", "'re");
}

export interface StreamDecoderOptions {
  /** Drop special tokens, as decode(..., {skipSpecialTokens}) does. Default false. */
  skipSpecialTokens?: boolean;
  /** Override the tokenizer's clean_up_tokenization_spaces. */
  cleanUpTokenizationSpaces?: boolean;
}

export class StreamDecoder {
  private readonly skip: boolean;
  private readonly cleanUp: boolean;
  private utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  /** Raw text not returned yet (only while clean-up holds it back). */
  private tail = "";
  // Non-byte-level path: all ids so far and the raw text already passed on.
  private ids: number[] = [];
  private rawDone = "";

  constructor(private readonly tok: Tokenizer, o: StreamDecoderOptions = {}) {
    this.skip = o.skipSpecialTokens ?? false;
    this.cleanUp = o.cleanUpTokenizationSpaces ?? tok.cleanUpTokenizationSpaces;
  }

  /** Adds one token id; returns the text it completes (often "", e.g. for the first bytes of an emoji). */
  push(id: number): string {
    if (this.tok.isByteLevel) {
      const b = this.tok.tokenBytes(id, this.skip);
      return b ? this.release(this.utf8.decode(b, { stream: true }), false) : "";
    }
    this.ids.push(id);
    const raw = this.tok.decode(this.ids, { skipSpecialTokens: this.skip, cleanUpTokenizationSpaces: false });
    if (raw.endsWith("\uFFFD") || !raw.startsWith(this.rawDone)) return "";
    const chunk = raw.slice(this.rawDone.length);
    this.rawDone = raw;
    return this.release(chunk, false);
  }

  /** Ends the stream: returns what was held back (an unfinished character becomes U+FFFD) and resets the decoder. */
  flush(): string {
    let chunk: string;
    if (this.tok.isByteLevel) {
      chunk = this.utf8.decode();
    } else {
      const raw = this.ids.length ? this.tok.decode(this.ids, { skipSpecialTokens: this.skip, cleanUpTokenizationSpaces: false }) : "";
      chunk = raw.startsWith(this.rawDone) ? raw.slice(this.rawDone.length) : raw.slice(Math.min(raw.length, this.rawDone.length));
    }
    const out = this.release(chunk, true);
    this.utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
    this.ids = [];
    this.rawDone = "";
    return out;
  }

  /**
   * Passes raw text on, through clean-up when it is on. Every clean-up pattern starts with a space and is at most 4
   * characters long, and replacements only delete spaces, so cutting where the 3 characters before the cut hold no
   * space gives clean(a + b) = clean(a) + clean(b).
   */
  private release(chunk: string, final: boolean): string {
    if (!this.cleanUp) return chunk;
    this.tail += chunk;
    let cut = this.tail.length;
    if (!final) {
      for (;;) {
        const from = Math.max(0, cut - 3);
        const p = this.tail.slice(from, cut).indexOf(" ");
        if (p < 0) break;
        cut = from + p;
      }
    }
    const out = cleanUpTokenization(this.tail.slice(0, cut));
    this.tail = this.tail.slice(cut);
    return out;
  }
}
