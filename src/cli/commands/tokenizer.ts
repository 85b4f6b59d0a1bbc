// `fathom tokenizer train`: byte-level BPE with DeepSeek-V3's pre-tokenizer, written as a Hugging Face folder.
import type { Command } from "commander";
import { join } from "node:path";
import { saveTokenizer, trainBPE } from "../../tokenizers/bpe_trainer.js";
import { int } from "../args.js";

/** DeepSeek-V3's BOS and EOS (U+FF5C fullwidth bars, U+2581 ▁), the default special tokens. */
const DEFAULT_SPECIALS = "<｜begin▁of▁sentence｜>,<｜end▁of▁sentence｜>";

const parseSpecials = (v: string) => v.split(",").map((s) => s.trim()).filter((s) => s.length > 0);

export function registerTokenizerCommands(program: Command): void {
  const tok = program.command("tokenizer").description("train tokenizers");
  tok.command("train")
    .description("train a byte-level BPE tokenizer (DeepSeek-V3 pre-tokenizer) and write DIR/tokenizer.json and DIR/tokenizer_config.json")
    .requiredOption("--files <paths...>", "UTF-8 text files to train on (each one a document)")
    .requiredOption("--vocab-size <n>", "total tokens: special tokens + 256 byte symbols + merges", int("--vocab-size"))
    .requiredOption("--out <dir>", "output folder (created if missing)")
    .option("--special-tokens <list>", "comma-separated special tokens, ids 0, 1, ...; the first is BOS, the second EOS (and pad); \"\" for none (default: DeepSeek-V3's BOS and EOS)",
      parseSpecials)
    .option("--min-frequency <n>", "stop when the best pair occurs fewer times", int("--min-frequency", 0), 2)
    .option("--model-max-length <n>", "model_max_length in tokenizer_config.json", int("--model-max-length"), 131072)
    .option("--quiet", "no progress lines on stderr")
    .addHelpText("after", [
      "",
      "Examples:",
      "  fathom tokenizer train --files corpus.txt --vocab-size 32000 --out ./tok",
      "  fathom tokenizer train --files en.txt zh.txt code.txt --vocab-size 8000 --min-frequency 3 --out ./tok",
      "  fathom tokenizer train --files a.txt --vocab-size 1000 --out ./tok --special-tokens \"<s>,</s>,<pad>\"",
      "",
      `Default special tokens: ${DEFAULT_SPECIALS}. Ids: specials first, then the 256 byte symbols, then merges.`,
      "If the corpus runs out of pairs before --vocab-size, the tokenizer is written smaller and a warning says so.",
    ].join("\n"))
    .action((o: { files: string[]; vocabSize: number; out: string; specialTokens?: string[]; minFrequency: number; modelMaxLength: number; quiet?: boolean }) => {
      const r = trainBPE({ files: o.files }, {
        vocabSize: o.vocabSize, specialTokens: o.specialTokens ?? parseSpecials(DEFAULT_SPECIALS), minFrequency: o.minFrequency,
        modelMaxLength: o.modelMaxLength, showProgress: !o.quiet,
      });
      saveTokenizer(o.out, r.tokenizer, r.config);
      const s = r.stats, fmt = (n: number) => n.toLocaleString("en-US");
      console.log([
        `vocab size   ${fmt(s.vocabSize)} (${s.specialTokens} special + 256 bytes + ${fmt(s.vocabSize - 256 - s.specialTokens)} merged)`,
        `merges       ${fmt(s.merges)}`,
        `corpus       ${o.files.length} file${o.files.length === 1 ? "" : "s"}, ${(s.bytes / 1e6).toFixed(2)} MB, ${fmt(s.pieces)} pieces, ${fmt(s.uniqueWords)} unique`,
        `time         ${s.seconds.toFixed(2)} s`,
        `wrote        ${join(o.out, "tokenizer.json")}, ${join(o.out, "tokenizer_config.json")}`,
      ].join("\n"));
      if (s.warning) process.stderr.write(`fathom: warning: ${s.warning}\n`);
    });
}
