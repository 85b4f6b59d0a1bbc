// The byte-level BPE alphabet (GPT-2's bytes_to_unicode): printable bytes map to themselves, the other 68 to U+0100,
// U+0101, ... Shared by the tokenizer's decoder, the BPE trainer and whoever builds byte-level vocabularies.

export const BYTE_TO_CHAR: readonly string[] = (() => {
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    out[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return out;
})();

/** Code point of an alphabet character → its byte. */
export const CHAR_TO_BYTE: ReadonlyMap<number, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c.codePointAt(0)!, b]));
