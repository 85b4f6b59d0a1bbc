// A small MLP trained with AdamW: the loss falls, and memory stays flat over many steps (tensor memory is
// garbage-collected ArrayBuffers that V8 accounts for; saved activations are released by backward()).
import assert from "node:assert/strict";
import { test } from "node:test";
import * as F from "../src/index.js";
import { BACKENDS } from "./helpers.js";

function mlp(dIn: number, dHidden: number, seed: number) {
  const w1 = F.randn([dIn, dHidden], { seed }).mul(1 / Math.sqrt(dIn)).detach().requiresGrad_();
  const w2 = F.randn([dHidden, 1], { seed: seed + 1 }).mul(1 / Math.sqrt(dHidden)).detach().requiresGrad_();
  const g = F.ones([dHidden]).requiresGrad_();
  return { params: [w1, w2, g], forward: (x: F.Tensor) => F.rmsNorm(x.matmul(w1), g).silu().matmul(w2) };
}

for (const be of BACKENDS) {
  test(`AdamW fits a regression target [${be}]`, () => F.withBackend(be, () => {
    const x = F.randn([64, 8], { seed: 3 });
    const y = x.slice(1, 0, 1).mul(2).sub(x.slice(1, 1, 2)).tanh();
    const m = mlp(8, 32, 4);
    const opt = new F.AdamW(m.params, { lr: 1e-2, weightDecay: 0 });
    let first = 0, last = 0;
    for (let step = 0; step < 150; step++) {
      const loss = m.forward(x).sub(y).square().mean();
      if (step === 0) first = loss.item();
      last = loss.item();
      opt.zeroGrad();
      loss.backward();
      opt.step();
    }
    assert.ok(last < first * 0.1, `loss ${first} → ${last}`);
  }));
}

test("memory stays flat over many training steps", { skip: BACKENDS.includes("native") ? false : "needs the native backend for speed" }, () =>
  F.withBackend("native", () => {
    const x = F.randn([256, 512], { seed: 5 }), y = F.randn([256, 1], { seed: 6 });
    const m = mlp(512, 512, 7);
    const opt = new F.AdamW(m.params, { lr: 1e-4 });
    const step = () => { const l = m.forward(x).sub(y).square().mean(); opt.zeroGrad(); l.backward(); opt.step(); };
    for (let i = 0; i < 40; i++) step();
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 300; i++) step();                     // ~10 MB of activations and gradients per step
    const grown = (process.memoryUsage().rss - before) / 2 ** 20;
    assert.ok(grown < 256, `RSS grew by ${grown.toFixed(0)} MiB over 300 steps`);
  }));
