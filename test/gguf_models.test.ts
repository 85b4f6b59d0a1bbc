// Models exported to GGUF: read back by Fathom (identical weights), and run by llama.cpp (node-llama-cpp 3.21.1):
// next-token log-probabilities within 1e-3 of ours at every position, and identical 32-token greedy continuations.
import assert from "node:assert/strict";
import { describe, test, before, after } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as F from "../src/index.js";
import { exportGGUF, loadGGUF, permuteQK, unpermuteQK } from "../src/io/gguf_model.js";
import { TINY_CONFIGS, tinyTokenizer } from "./fixtures.js";
import { llamaCppAvailable, llamaCppRun } from "./llama_cpp.js";

const PROMPTS = [[286, 72, 101, 108, 108, 111], [286, 259, 260, 32, 119, 111, 114, 108, 100, 33, 10, 50], [5, 17, 200, 3, 99, 42, 7, 8, 150, 281]];
let dir = "";
before(() => { dir = mkdtempSync(join(tmpdir(), "fathom-gguf-")); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

test("llama.cpp's Q/K row permutation and its inverse", () => {
  const w = F.arange(0, 4 * 8 * 3).to("f32").reshape(8, 3 * 4).slice(1, 0, 3);   // 8 rows (2 heads × hd 4), 3 columns
  const p = permuteQK(w, 2);
  // head 0: rows (0, 2, 1, 3): HF pair (i, i + hd/2) becomes adjacent (2i, 2i + 1)
  assert.deepEqual(p.slice(0, 0, 4).slice(1, 0, 1).toArray(), [0, 24, 12, 36]);
  assert.deepEqual(unpermuteQK(p, 2).toArray(), w.contiguous().toArray());
});

// llama.cpp reads a deepseek2 model without q_lora_rank (the V2-Lite layout) only when it has 26 or 27 layers.
const CONFIGS = { ...TINY_CONFIGS, deepseek_v2: { ...TINY_CONFIGS.deepseek_v2, num_hidden_layers: 26 } };

for (const [name, cfg] of Object.entries(CONFIGS)) {
  describe(`GGUF ${name}`, () => {
    const path = () => join(dir, `${name}.gguf`);
    const model = F.randomModel(cfg, { seed: 11, init: "scaled" });
    const tok = tinyTokenizer(288);

    test("export → import gives identical weights; info and generate work on the file", () => {
      exportGGUF(model, path(), { tokenizer: { json: tok.tokenizer, config: tok.config, pre: "gpt-2" } });
      const back = loadGGUF(path());
      assert.equal(back.modelType, name);
      // GGUF drops the multi-token-prediction layers (llama.cpp's converter does too)
      const L = (cfg as { num_hidden_layers: number }).num_hidden_layers;
      const a = new Map([...model.stateDict()].filter(([k]) => !(Number(/^model\.layers\.(\d+)\./.exec(k)?.[1] ?? -1) >= L)));
      const b = back.stateDict();
      assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
      for (const [k, t] of a) assert.deepEqual(b.get(k)!.to("f32").toArray(), t.to("f32").toArray(), k);
      const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", "src/cli/run.ts", ...args], { encoding: "utf8" });
      const info = run("info", path(), "--json");
      assert.equal(info.status, 0, info.stderr);
      assert.equal(JSON.parse(info.stdout).parameters, model.info().parameters);
      const gen = run("generate", "-m", path(), "--prompt-ids", PROMPTS[0].join(","), "--max-new-tokens", "5", "--json");
      assert.equal(gen.status, 0, gen.stderr);
      assert.deepEqual(JSON.parse(gen.stdout).token_ids, model.generateGreedy(PROMPTS[0], 5).tokenIds);
    });

    test("llama.cpp agrees: log-probabilities within 1e-3, identical greedy continuations", { timeout: 240_000 }, async (t) => {
      if (!(await llamaCppAvailable())) { t.skip("node-llama-cpp not installed"); return; }
      const ref = await llamaCppRun(path(), PROMPTS, 32);
      let worst = 0;
      PROMPTS.forEach((prompt, pi) => {
        const logits = F.noGrad(() => model.forward(F.tensor([prompt], { dtype: "i32" })));
        const lp = logits.logSoftmax(-1).toArray();
        const V = logits.shape[2];
        ref[pi].logprobs.forEach((m, pos) => {
          assert.ok(m.size > 0, `llama.cpp returned no probabilities at position ${pos}`);
          for (const [id, l] of m) if (l > -30) worst = Math.max(worst, Math.abs(l - lp[pos * V + id]));
        });
        const ours = model.generateGreedy(prompt, 32).tokenIds;
        assert.deepEqual(ours, ref[pi].greedy, `greedy continuation of prompt ${pi}`);
      });
      t.diagnostic(`${name}: max |Δ log p| vs llama.cpp = ${worst.toExponential(2)}`);
      assert.ok(worst <= 1e-3, `max |Δ log p| = ${worst}`);
    });
  });
}

test("deepseek2 files in the older layout (one attn_kv_b) load the same model", () => {
  const model = F.randomModel(TINY_CONFIGS.deepseek_v3, { seed: 12, init: "scaled" });
  const newer = join(dir, "ds-new.gguf"), older = join(dir, "ds-old.gguf");
  exportGGUF(model, newer);
  const f = F.GGUFFile.open(newer);
  // the older layout: no *_mla keys; per-head key/value widths and head_count_kv = H as in plain attention
  const legacy: Record<string, number> = { "deepseek2.attention.key_length": 16 + 8, "deepseek2.attention.value_length": 16, "deepseek2.attention.head_count_kv": 4 };
  const meta = [...f.metadata].filter(([k]) => !/_mla$/.test(k)).map(([key, e]) => ({ key, type: e.type, value: legacy[key] ?? e.value }));
  const tensors: { name: string; tensor: F.Tensor }[] = [];
  for (const t of f.tensors) {
    if (/attn_v_b/.test(t.name)) continue;
    if (/attn_k_b/.test(t.name)) {
      const i = t.name.split(".")[1];
      tensors.push({ name: `blk.${i}.attn_kv_b.weight`, tensor: model.stateDict().get(`model.layers.${i}.self_attn.kv_b_proj.weight`)!.contiguous() });
    } else tensors.push({ name: t.name, tensor: f.get(t.name) });
  }
  F.writeGGUF(older, { metadata: meta as never, tensors });
  const a = loadGGUF(newer).stateDict(), b = loadGGUF(older).stateDict();
  for (const [k, t] of a) assert.deepEqual(b.get(k)!.toArray(), t.toArray(), k);
});

test("GGUF export in bf16 and f16 keeps norms in f32 and loads back rounded", () => {
  const model = F.randomModel(TINY_CONFIGS.llama, { seed: 13, init: "scaled" });
  for (const dtype of ["bf16", "f16"] as const) {
    const p = join(dir, `llama-${dtype}.gguf`);
    exportGGUF(model, p, { dtype });
    const f = F.GGUFFile.open(p);
    const types = new Map(f.tensors.map((t) => [t.name, t.typeName]));
    assert.equal(types.get("blk.0.attn_norm.weight"), "F32");
    assert.equal(types.get("blk.0.ffn_up.weight"), dtype.toUpperCase());
    const back = loadGGUF(p);
    const w = model.stateDict().get("model.layers.0.mlp.up_proj.weight")!;
    assert.deepEqual(back.stateDict().get("model.layers.0.mlp.up_proj.weight")!.to("f32").toArray(), w.to(dtype).to("f32").toArray());
  }
});
