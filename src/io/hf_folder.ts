// Hugging Face model folders: config.json + generation_config.json + model.safetensors (or shards with
// model.safetensors.index.json). Loading maps the files and views the tensors (no copy unless a dtype conversion is
// asked for); DeepSeek-V3's FP8 weights are dequantized with their block-wise weight_scale_inv. Saving writes the same
// layout atomically, file by file.
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FathomError } from "../core/errors.js";
import { isFloat, type DType } from "../core/dtype.js";
import type { Tensor } from "../core/tensor.js";
import { CausalLM } from "../models/decoder.js";
import { modelFromConfig } from "../models/registry.js";
import type { RawConfig } from "../models/config.js";
import { SafetensorsCheckpoint, dequantFp8, saveSharded } from "./safetensors.js";
import { writeTextAtomic } from "./atomic.js";

export interface LoadOptions {
  /** Convert floating weights to this dtype (default: keep what the files hold; FP8 becomes bf16). */
  dtype?: DType;
  /** Called as tensors load (for a progress bar). */
  onProgress?: (done: number, total: number) => void;
}
export interface SaveOptions { maxShardBytes?: number }

declare module "../models/decoder.js" {
  interface CausalLM {
    /** generation_config.json as loaded (saved back as is). */
    generationConfig?: Record<string, unknown>;
    /** Writes config.json, generation_config.json and the weights in the Hugging Face layout. */
    savePretrained(dir: string, o?: SaveOptions): void;
  }
}

function readJson(path: string, what: string): Record<string, unknown> {
  let text: string;
  try { text = readFileSync(path, "utf8"); } catch (e) { throw new FathomError("hf", `cannot read ${what} ${path}: ${(e as Error).message}`); }
  let v: unknown;
  try { v = JSON.parse(text); } catch (e) { throw new FathomError("hf", `${path}: invalid JSON: ${(e as Error).message}`); }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FathomError("hf", `${path}: expected a JSON object`);
  return v as Record<string, unknown>;
}

/** Names a checkpoint may hold that the model does not use (HF ignores them too). */
function ignorable(name: string, model: CausalLM): boolean {
  if (name.endsWith(".rotary_emb.inv_freq") || name.endsWith("_scale_inv")) return true;
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return !!m && Number(m[1]) >= (model.model.layers as unknown[]).length;      // MTP layers when the model has none
}

export function loadFolder(dir: string, o: LoadOptions = {}): CausalLM {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new FathomError("hf", `${dir} is not a model folder`);
  const cfgPath = join(dir, "config.json");
  if (!existsSync(cfgPath)) throw new FathomError("hf", `${dir}: missing config.json`);
  const raw = readJson(cfgPath, "config") as RawConfig;
  const model = modelFromConfig(raw, cfgPath);
  const genPath = join(dir, "generation_config.json");
  if (existsSync(genPath)) model.generationConfig = readJson(genPath, "generation config");
  const ck = SafetensorsCheckpoint.open(dir);
  const get = (name: string): Tensor | undefined => {
    if (!ck.has(name)) return undefined;
    const info = ck.info(name);
    if (info.dtype === "F8_E4M3" && ck.has(`${name}_scale_inv`)) {
      const w = dequantFp8(ck.file(name).getFp8(name), ck.get(`${name}_scale_inv`).float());
      return w.to(o.dtype ?? "bf16");
    }
    return ck.get(name);
  };
  model.loadStateDict(get, { dtype: o.dtype, source: ck.path, onProgress: o.onProgress });
  const known = new Set(model.stateDict().keys());
  const extra = ck.names().filter((n) => !known.has(n) && !ignorable(n, model));
  if (extra.length) process.stderr.write(`[fathom] ${dir}: ignoring ${extra.length} unexpected tensor(s): ${extra.slice(0, 3).join(", ")}${extra.length > 3 ? ", ..." : ""}\n`);
  return model;
}

export function saveFolder(model: CausalLM, dir: string, o: SaveOptions = {}): void {
  mkdirSync(dir, { recursive: true });
  const sd = model.stateDict();
  const cfg: Record<string, unknown> = { ...model.rawConfig };
  const dt = model.model.embed_tokens.weight.dtype;            // the weights' dtype (router biases stay f32)
  if (isFloat(dt)) cfg.torch_dtype = { f32: "float32", bf16: "bfloat16", f16: "float16", f64: "float64" }[dt];
  saveSharded(dir, sd, { maxShardBytes: o.maxShardBytes, metadata: { format: "pt" } });
  writeTextAtomic(join(dir, "config.json"), JSON.stringify(cfg, null, 2) + "\n", "hf");
  const gen = model.generationConfig ?? { _from_model_config: true, bos_token_id: cfg.bos_token_id, eos_token_id: cfg.eos_token_id };
  writeTextAtomic(join(dir, "generation_config.json"), JSON.stringify(gen, null, 2) + "\n", "hf");
}

CausalLM.prototype.savePretrained = function (this: CausalLM, dir: string, o?: SaveOptions) { saveFolder(this, dir, o); };
