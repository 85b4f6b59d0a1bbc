// AutoModelForCausalLM: the entry point users start from, as in transformers.
import type { CausalLM } from "../models/decoder.js";
import { randomModel, type RandomInit } from "../models/registry.js";
import type { RawConfig } from "../models/config.js";
import { loadFolder, type LoadOptions } from "./hf_folder.js";
import { loadGGUF } from "./gguf_model.js";

export class AutoModelForCausalLM {
  /** A Hugging Face folder (config.json + safetensors) or a GGUF file (.gguf). */
  static fromPretrained(path: string, o: LoadOptions = {}): CausalLM {
    return path.endsWith(".gguf") ? loadGGUF(path, o) : loadFolder(path, o);
  }
  /** A model with seeded random weights for a config (tests, benchmarks). */
  static fromConfig(config: RawConfig, o: RandomInit = {}): CausalLM { return randomModel(config, o); }
}
