// The `fathom` command line. Errors print as one message line (no stack trace) and exit non-zero.
import { Command, InvalidArgumentError } from "commander";
import { FathomError } from "../core/errors.js";
import { registerBench } from "./commands/bench.js";
import { registerQuantize } from "./commands/quantize.js";
import { registerTokenizerCommands } from "./commands/tokenizer.js";
import { registerModelCommands } from "./commands/model.js";
import { registerTextCommands } from "./commands/text.js";
import { registerServe } from "./commands/serve.js";

export function buildProgram(): Command {
  const program = new Command("fathom")
    .description("Fathom: run, train, quantize and serve DeepSeek-family models from TypeScript")
    .version("0.1.0")
    .showHelpAfterError();
  registerModelCommands(program);
  registerTextCommands(program);
  registerBench(program);
  registerQuantize(program);
  registerTokenizerCommands(program);
  registerServe(program);
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof FathomError || e instanceof InvalidArgumentError) {
      process.stderr.write(`fathom: ${e.message}\n`);
      process.exitCode = 1;
    } else throw e;
  }
}
