// Forward semantics of the ops on hand-computed values, run on every backend, plus views, dtypes and errors.
import assert from "node:assert/strict";
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import * as F from "../src/index.js";
import { assertClose, eachBackend } from "./helpers.js";

const t = (v: unknown, dtype: F.DType = "f32") => F.tensor(v as number[], { dtype });

eachBackend("ops", (be) => {
  const on = (fn: () => void) => () => F.withBackend(be, fn);

  test("broadcasting arithmetic", on(() => {
    const a = t([[1, 2, 3], [4, 5, 6]]), b = t([10, 20, 30]);
    assert.deepEqual(a.add(b).tolist(), [[11, 22, 33], [14, 25, 36]]);
    assert.deepEqual(a.sub(t([[1], [2]])).tolist(), [[0, 1, 2], [2, 3, 4]]);
    assert.deepEqual(a.mul(2).tolist(), [[2, 4, 6], [8, 10, 12]]);
    assert.deepEqual(a.div(t([1, 2, 4])).tolist(), [[1, 1, 0.75], [4, 2.5, 1.5]]);
    assert.deepEqual(a.maximum(3).toArray(), [3, 3, 3, 4, 5, 6]);
    assert.deepEqual(a.pow(2).toArray(), [1, 4, 9, 16, 25, 36]);
    // a transposed (non-contiguous) operand is read through its strides
    assert.deepEqual(a.T.add(t([[100], [200], [300]])).tolist(), [[101, 104], [202, 205], [303, 306]]);
  }));

  test("unary values", on(() => {
    const x = t([-2, -0.5, 0, 0.5, 3]);
    assertClose(x.exp(), x.toArray().map(Math.exp));
    assertClose(x.tanh(), x.toArray().map(Math.tanh));
    assertClose(x.sigmoid(), x.toArray().map((v) => 1 / (1 + Math.exp(-v))));
    assertClose(x.silu(), x.toArray().map((v) => v / (1 + Math.exp(-v))));
    assertClose(x.relu(), [0, 0, 0, 0.5, 3]);
    assertClose(x.gelu(), [-0.04550026389635842, -0.15426876936299344, 0, 0.34573123063700656, 2.9959502001329]);
    assertClose(x.gelu("tanh"), [-0.04540230591222, -0.15428599017516, 0, 0.34571400982484, 2.99636286259]);
    assertClose(t([4, 9]).sqrt(), [2, 3]);
    assertClose(t([4, 16]).rsqrt(), [0.5, 0.25]);
  }));

  test("reductions", on(() => {
    const x = t([[1, 5, 3], [4, 2, 6]]);
    assert.deepEqual(x.sum().item(), 21);
    assert.deepEqual(x.sum(0).toArray(), [5, 7, 9]);
    assert.deepEqual(x.sum(1, true).shape, [2, 1]);
    assert.deepEqual(x.mean(1).toArray(), [3, 4]);
    assert.deepEqual(x.max(1).toArray(), [5, 6]);
    assert.deepEqual(x.min(0).toArray(), [1, 2, 3]);
    assert.deepEqual(x.argmax(1).toArray(), [1, 2]);
    assert.deepEqual(x.argmax().item(), 5);
    assert.equal(x.argmax(1).dtype, "i32");
    assertClose(x.logsumexp(1), [Math.log(Math.exp(1) + Math.exp(5) + Math.exp(3)), Math.log(Math.exp(4) + Math.exp(2) + Math.exp(6))]);
    const s = x.softmax(-1).toArray();
    const e = [1, 5, 3].map(Math.exp), z = e.reduce((a, b) => a + b);
    assertClose(s.slice(0, 3), e.map((v) => v / z));
    assertClose(x.logSoftmax(0), [[1, 4], [5, 2], [3, 6]].flatMap(([a, b]) => { const l = Math.log(Math.exp(a) + Math.exp(b)); return [a - l, b - l]; })
      .reduce((acc: number[], v, i) => { acc[(i % 2) * 3 + Math.floor(i / 2)] = v; return acc; }, []));
    const { values, indices } = t([3, 1, 4, 1, 5, 9, 2, 6]).topk(3);
    assert.deepEqual(values.toArray(), [9, 6, 5]);
    assert.deepEqual(indices.toArray(), [5, 7, 4]);
  }));

  test("matmul shapes, batching and transposes", on(() => {
    const a = F.randn([2, 3, 4], { seed: 1 }), b = F.randn([4, 5], { seed: 2 });
    const c = a.matmul(b);
    assert.deepEqual(c.shape, [2, 3, 5]);
    const a1 = a.slice(0, 1, 2).reshape(3, 4);
    const manual = F.tensor(Array.from({ length: 15 }, (_, idx) => {
      const i = Math.floor(idx / 5), j = idx % 5;
      let s = 0;
      for (let k = 0; k < 4; k++) s += a1.toArray()[i * 4 + k] * b.toArray()[k * 5 + j];
      return s;
    }), { shape: [3, 5] });
    assertClose(c.slice(0, 1, 2).reshape(3, 5), manual);
    assertClose(b.T.matmul(a.transpose(1, 2)).transpose(1, 2), c, { atol: 1e-5, rtol: 1e-5 });
    assert.deepEqual(F.randn([4]).matmul(F.randn([4])).shape, []);
  }));

  test("indexing ops", on(() => {
    const w = t([[0, 1], [10, 11], [20, 21]]);
    assert.deepEqual(F.embedding(w, F.tensor([2, 0, 2], { dtype: "i32" })).tolist(), [[20, 21], [0, 1], [20, 21]]);
    assert.deepEqual(w.gather(1, F.tensor([[1], [0], [1]], { dtype: "i32" })).toArray(), [1, 10, 21]);
    const sa = F.scatterAdd(F.zeros([3]), 0, F.tensor([0, 2, 0], { dtype: "i32" }), t([1, 2, 3]));
    assert.deepEqual(sa.toArray(), [4, 0, 2]);
    assert.deepEqual(F.concat([w, t([[7, 8]])], 0).shape, [4, 2]);
    assert.deepEqual(w.split(1, 1).map((p) => p.toArray()), [[0, 10, 20], [1, 11, 21]]);
    const m = F.tensor([[1, 0], [0, 1], [1, 1]], { dtype: "bool" });
    assert.deepEqual(w.maskedFill(m, -1).toArray(), [-1, 1, 10, -1, -1, -1]);
    assert.deepEqual(F.where(w.gt(10), w, 0).toArray(), [0, 0, 0, 11, 20, 21]);
  }));

  test("cross entropy with ignore_index matches the definition", on(() => {
    const logits = t([[2, 1, 0], [0, 0, 0], [1, 3, 2]]);
    const targets = F.tensor([0, -100, 1], { dtype: "i32" });
    const lse = (r: number[]) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
    const want = ((lse([2, 1, 0]) - 2) + (lse([1, 3, 2]) - 3)) / 2;
    assertClose([F.crossEntropy(logits, targets).item()], [want]);
  }));
});

test("views share storage; contiguous copies only when needed", () => {
  const x = F.arange(12).to("f32").reshape(3, 4);
  const tr = x.T;
  assert.equal(tr.data, x.data);
  assert.equal(tr.isContiguous, false);
  assert.deepEqual(tr.contiguous().toArray(), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  assert.equal(x.contiguous(), x);
  const s = x.slice(1, 1, 3);
  assert.equal(s.data, x.data);
  assert.deepEqual(s.toArray(), [1, 2, 5, 6, 9, 10]);
  const e = F.tensor([1, 2]).reshape(2, 1).expand(2, 3);
  assert.deepEqual(e.strides, [1, 0]);
  assert.deepEqual(e.toArray(), [1, 1, 1, 2, 2, 2]);
});

test("wrapping external memory without copying", () => {
  const mem = new Float32Array([1, 2, 3, 4, 5, 6]);
  const x = F.Tensor.from(mem, "f32", [2, 3]);
  mem[0] = 42;
  assert.equal(x.toArray()[0], 42);
  const buf = new ArrayBuffer(64);
  new Float32Array(buf, 16, 4).set([7, 8, 9, 10]);
  const y = F.Tensor.from(buf, "f32", [2, 2], 16);
  assert.deepEqual(y.toArray(), [7, 8, 9, 10]);
  assert.throws(() => F.Tensor.from(buf, "f32", [20], 0), F.FathomError);
  assert.throws(() => F.Tensor.from(new Float32Array(3), "bf16", [3]), F.DTypeError);
});

test("dtypes: bf16 / f16 round trips, promotion, i32 and bool", () => {
  const x = F.tensor([1, 1.00390625, 3.14159, -2.5e-3, 65504, 1e-8], { dtype: "f32" });
  // expected values from numpy (float16) and bit arithmetic (bf16, round to nearest even)
  assert.deepEqual(x.to("bf16").to("f32").toArray(), [1, 1, 3.140625, -0.00250244140625, 65536, 1.0011717677116394e-8]);
  assert.deepEqual(x.to("f16").to("f32").toArray(), [1, 1.00390625, 3.140625, -0.0025005340576171875, 65504, 0]);
  assert.equal(F.tensor([1], { dtype: "bf16" }).add(F.tensor([1], { dtype: "f32" })).dtype, "f32");
  assert.equal(F.tensor([1], { dtype: "bf16" }).mul(F.tensor([2], { dtype: "bf16" })).dtype, "bf16");
  assert.deepEqual(F.tensor([1, 2], { dtype: "i32" }).add(F.tensor([3, 4], { dtype: "i32" })).toArray(), [4, 6]);
  assert.equal(F.tensor([1, 2]).gt(1).dtype, "bool");
  assert.equal(F.tensor([1, 2], { dtype: "bf16" }).matmul(F.tensor([3, 4], { dtype: "bf16" })).item(), 11);
});

test("autograd: accumulation, noGrad, detach, freed graphs", () => {
  const w = F.tensor([1, 2, 3]).requiresGrad_();
  w.mul(2).sum().backward();
  w.mul(3).sum().backward();
  assert.deepEqual(w.grad!.toArray(), [5, 5, 5]);
  const y = F.noGrad(() => w.mul(2));
  assert.equal(y.requiresGrad, false);
  assert.equal(w.detach().requiresGrad, false);
  const z = w.mul(w).sum();
  z.backward();
  assert.throws(() => z.backward(), F.GradError);
  assert.throws(() => w.mul(2).backward(), /single element/);
  assert.throws(() => F.tensor([1], { dtype: "i32" }).requiresGrad_(), F.DTypeError);
});

test("errors are typed and name the op and shapes", () => {
  assert.throws(() => F.tensor([[1, 2, 3], [4, 5, 6]]).matmul(F.zeros([4, 5])), (e: Error) =>
    e instanceof F.ShapeError && e.message === "[matmul] inner dimensions differ: [2, 3] @ [4, 5]");
  assert.throws(() => F.zeros([2, 3]).add(F.zeros([4])), /\[add\] shapes cannot broadcast: \[2, 3\] and \[4\]/);
  assert.throws(() => F.zeros([6]).reshape(4, 2), /\[reshape\] cannot reshape \[6\]/);
  assert.throws(() => F.zeros([2]).sum(3), /\[sum\] dim 3 out of range/);
  assert.throws(() => F.embedding(F.zeros([3, 2]), F.tensor([3], { dtype: "i32" })), /\[indexSelect\] index 3 out of range/);
  assert.throws(() => F.zeros([2]).gather(0, F.tensor([0])), F.DTypeError);
  assert.throws(() => F.crossEntropy(F.zeros([2, 3]), F.tensor([0, 5], { dtype: "i32" })), /target 5 out of range/);
  assert.throws(() => F.rmsNorm(F.zeros([2, 4]), F.zeros([3])), /\[rms_norm\]/);
  assert.throws(() => F.sdpa(F.zeros([1, 3, 2, 4]), F.zeros([1, 2, 2, 4]), F.zeros([1, 2, 2, 4])), /\[sdpa\] incompatible/);
});

eachBackend("non-contiguous inputs", (be) => {
  test("every op reads strided views correctly", () => F.withBackend(be, () => {
    const base = F.randn([6, 5, 4], { seed: 11 });
    const v = base.permute(2, 0, 1).slice(1, 1, 5);            // [4, 4, 5], strided, offset
    const c = v.contiguous();
    assert.equal(v.isContiguous, false);
    const same = (f: (t: F.Tensor) => F.Tensor, what: string) => assertClose(f(v), f(c), { atol: 1e-6, rtol: 1e-6 }, what);
    same((t) => t.exp(), "exp");
    same((t) => t.add(t.transpose(0, 1)), "add transposed");
    same((t) => t.sum(1), "sum");
    same((t) => t.max(0), "max");
    same((t) => t.softmax(-1), "softmax");
    same((t) => t.logSoftmax(1), "logSoftmax mid");
    same((t) => t.matmul(t.transpose(1, 2)), "bmm");
    same((t) => t.matmul(base.slice(0, 1, 6).reshape(5, 20).slice(1, 0, 5)), "matmul sliced");
    same((t) => F.rmsNorm(t, F.ones([5])), "rmsNorm");
    same((t) => F.swiglu(t, t.exp()), "swiglu");
    same((t) => F.sdpa(t.unsqueeze(0), t.unsqueeze(0), t.unsqueeze(0), { causal: true }), "sdpa");
    same((t) => t.gather(2, F.zeros([4, 4, 2], "i32")), "gather");
    same((t) => t.indexSelect(1, F.tensor([3, 0], { dtype: "i32" })), "indexSelect");
    same((t) => t.to("bf16").to("f32"), "cast");
  }));
});

test("without the addon Fathom runs on the reference backend and says so once", () => {
  const code = `import * as F from "./src/index.ts";
    const x = F.tensor([1, 2, 3]); console.log(JSON.stringify([x.add(x).toArray(), x.exp().sum().item() > 0, F.getBackend().name]));`;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code],
    { encoding: "utf8", env: { ...process.env, FATHOM_ADDON: "/nonexistent/fathom.node", FATHOM_BACKEND: "" } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), JSON.stringify([[2, 4, 6], true, "ref"]));
  assert.equal(r.stderr.match(/native addon unavailable/g)?.length, 1, r.stderr);
});
