// Every differentiable op and fused op passes a central-difference gradient check in float64 on the
// reference backend.
import { describe, test } from "node:test";
import * as F from "../src/index.js";
import { gradcheck, r64 } from "./helpers.js";

const i32 = (v: number[], shape?: number[]) => F.tensor(v, { dtype: "i32", shape });

describe("gradcheck: elementwise", () => {
  test("binary ops with broadcasting", () => {
    const a = r64([2, 3, 4], 1), b = r64([3, 1], 2), pos = r64([3, 4], 3, 0.3, 2);
    gradcheck("add", (x, y) => x.add(y), [a, b]);
    gradcheck("sub", (x, y) => x.sub(y), [a, b]);
    gradcheck("mul", (x, y) => x.mul(y), [a, b]);
    gradcheck("div", (x, y) => x.div(y), [a, pos]);
    gradcheck("pow", (x, y) => x.pow(y), [pos, r64([4], 4, 0.5)]);
    gradcheck("maximum", (x, y) => x.maximum(y), [a, b]);
    gradcheck("minimum", (x, y) => x.minimum(y), [a, b]);
    gradcheck("scalar", (x) => x.mul(3).add(1).div(2).sub(0.5), [a]);
  });
  test("unary ops", () => {
    const x = r64([3, 5], 5), pos = r64([3, 5], 6, 0.2, 1.5), nz = r64([3, 5], 7, 1, 0).add(0);
    for (const op of ["neg", "exp", "silu", "tanh", "sigmoid", "square"] as const) gradcheck(op, (t) => t[op](), [x]);
    gradcheck("gelu", (t) => t.gelu(), [x]);
    gradcheck("gelu tanh", (t) => t.gelu("tanh"), [x]);
    gradcheck("log", (t) => t.log(), [pos]);
    gradcheck("sqrt", (t) => t.sqrt(), [pos]);
    gradcheck("rsqrt", (t) => t.rsqrt(), [pos]);
    gradcheck("reciprocal", (t) => t.reciprocal(), [pos]);
    // abs and relu away from their kink at 0
    const away = F.tensor(nz.toArray().map((v) => (Math.abs(v) < 0.05 ? 0.3 : v)), { dtype: "f64", shape: [3, 5] }).requiresGrad_();
    gradcheck("abs", (t) => t.abs(), [away]);
    gradcheck("relu", (t) => t.relu(), [away]);
  });
  test("where and maskedFill", () => {
    const a = r64([2, 3], 8), b = r64([3], 9);
    const c = F.tensor([1, 0, 1, 0, 0, 1], { dtype: "bool", shape: [2, 3] });
    gradcheck("where", (x, y) => F.where(c, x, y), [a, b]);
    gradcheck("maskedFill", (x) => x.maskedFill(c, -2), [a]);
  });
  test("cast f64 → f32 → f64 passes the gradient through", () => {
    gradcheck("cast", (x) => x.to("f32").to("f64").mul(x), [r64([4], 10)], { eps: 1e-3, atol: 1e-3, rtol: 1e-3 });
  });
});

describe("gradcheck: reductions", () => {
  const x = r64([3, 4, 5], 11);
  test("sum / mean over dims", () => {
    gradcheck("sum all", (t) => t.sum(), [x]);
    gradcheck("sum dim", (t) => t.sum(1), [x]);
    gradcheck("sum dims keepdim", (t) => t.sum([0, 2], true), [x]);
    gradcheck("mean", (t) => t.mean(-1), [x]);
  });
  test("max / min / logsumexp", () => {
    gradcheck("max dim", (t) => t.max(2), [x]);
    gradcheck("min dim keepdim", (t) => t.min(0, true), [x]);
    gradcheck("max all", (t) => t.max(), [x]);
    gradcheck("logsumexp", (t) => t.logsumexp(1), [x]);
  });
  test("softmax / logSoftmax on every axis", () => {
    gradcheck("softmax last", (t) => t.softmax(-1), [x]);
    gradcheck("softmax mid", (t) => t.softmax(1), [x]);
    gradcheck("logSoftmax", (t) => t.logSoftmax(-1), [x]);
    gradcheck("logSoftmax first", (t) => t.logSoftmax(0), [x]);
  });
  test("topk values", () => {
    gradcheck("topk", (t) => t.topk(2, 1).values, [x]);
  });
  test("cross entropy with ignore_index", () => {
    const logits = r64([5, 7], 12);
    const targets = i32([3, -100, 0, 6, 2]);
    gradcheck("crossEntropy mean", (t) => F.crossEntropy(t, targets), [logits]);
    gradcheck("crossEntropy sum", (t) => F.crossEntropy(t, targets, { reduction: "sum" }), [logits]);
    gradcheck("crossEntropy none", (t) => F.crossEntropy(t, targets, { reduction: "none" }), [logits]);
  });
});

describe("gradcheck: matmul and movement", () => {
  test("matmul: 2-D, vector, batched with broadcast, transposed views", () => {
    gradcheck("mm", (a, b) => a.matmul(b), [r64([3, 4], 13), r64([4, 5], 14)]);
    gradcheck("mv", (a, b) => a.matmul(b), [r64([3, 4], 15), r64([4], 16)]);
    gradcheck("bmm broadcast", (a, b) => a.matmul(b), [r64([2, 3, 4], 17), r64([4, 2], 18)]);
    gradcheck("bmm 4-D", (a, b) => a.matmul(b), [r64([2, 1, 3, 4], 19), r64([3, 4, 2], 20)]);
    gradcheck("transposed", (a, b) => a.T.matmul(b.T), [r64([4, 3], 21), r64([5, 4], 22)]);
  });
  test("reshape / permute / transpose / slice / expand / squeeze / contiguous", () => {
    const x = r64([2, 3, 4], 23);
    gradcheck("reshape", (t) => t.reshape(4, 6).mul(F.arange(6).to("f64")), [x]);
    gradcheck("permute", (t) => t.permute(2, 0, 1).contiguous(), [x]);
    gradcheck("transpose", (t) => t.transpose(0, 2).reshape(-1), [x]);
    gradcheck("slice step", (t) => t.slice(2, 1, 4, 2), [x]);
    gradcheck("slice neg", (t) => t.slice(1, -2), [x]);
    gradcheck("expand", (t) => t.slice(1, 0, 1).expand(2, 5, 4), [x]);
    gradcheck("squeeze/unsqueeze", (t) => t.unsqueeze(1).squeeze(1).flatten(), [x]);
  });
  test("concat / split", () => {
    const a = r64([2, 3], 24), b = r64([2, 2], 25);
    gradcheck("concat", (x, y) => F.concat([x, y], 1), [a, b]);
    gradcheck("split", (x) => { const [p, q] = x.split([1, 2], 1); return p.mul(q.sum(1, true)); }, [a]);
  });
});

describe("gradcheck: indexing", () => {
  test("indexSelect / embedding / gather / scatterAdd / indexAdd", () => {
    const w = r64([6, 3], 26);
    gradcheck("indexSelect", (t) => t.indexSelect(0, i32([5, 0, 5, 2])), [w]);
    gradcheck("indexSelect dim1", (t) => t.indexSelect(1, i32([2, 2, 0])), [w]);
    gradcheck("embedding", (t) => F.embedding(t, i32([1, 4, 1, 0, 3, 3], [2, 3])), [w]);
    gradcheck("gather", (t) => t.gather(1, i32([0, 2, 1, 1, 2, 0, 0, 0], [4, 2])), [r64([4, 3], 27)]);
    const src = r64([2, 3], 28);
    gradcheck("scatterAdd", (x, s) => F.scatterAdd(x, 0, i32([3, 0, 1, 3, 3, 2], [2, 3]), s), [r64([4, 3], 29), src]);
    gradcheck("indexAdd", (x, s) => F.indexAdd(x, 0, i32([3, 3]), s), [r64([4, 3], 30), src]);
  });
});

describe("gradcheck: fused ops (references)", () => {
  test("rmsNorm", () => {
    gradcheck("rmsNorm", (x, w) => F.rmsNorm(x, w, 1e-5), [r64([3, 7], 31), r64([7], 32)]);
    gradcheck("rmsNorm no weight", (x) => F.rmsNorm(x, null, 1e-5), [r64([2, 5], 33)]);
  });
  test("rope: half-split and interleaved, partial rotary dims, offsets", () => {
    const P = 16, half = 3;
    const ang = Array.from({ length: P * half }, (_, i) => Math.floor(i / half) * Math.pow(10000, -(i % half) / half));
    const cos = F.tensor(ang.map(Math.cos), { dtype: "f64", shape: [P, half] });
    const sin = F.tensor(ang.map(Math.sin), { dtype: "f64", shape: [P, half] });
    const pos = i32([5, 6, 7, 8], [1, 1, 4]);        // [B, H, T] with an offset of 5
    gradcheck("rope half", (x) => F.rope(x, cos, sin, pos), [r64([1, 2, 4, 6], 34)]);
    gradcheck("rope interleaved", (x) => F.rope(x, cos, sin, pos, { interleaved: true }), [r64([1, 2, 4, 6], 35)]);
    gradcheck("rope partial", (x) => F.rope(x, cos, sin, pos, { rotDim: 6 }), [r64([1, 2, 4, 8], 36)]);
  });
  test("swiglu", () => {
    gradcheck("swiglu", (g, u) => F.swiglu(g, u), [r64([3, 5], 37), r64([3, 5], 38)]);
  });
  test("sdpa: causal, grouped-query heads, masks, offset", () => {
    const q = r64([1, 4, 3, 5], 39), k = r64([1, 2, 5, 5], 40), v = r64([1, 2, 5, 3], 41);
    gradcheck("sdpa causal gqa offset", (a, b, c) => F.sdpa(a, b, c, { causal: true }), [q, k, v]);
    const bmask = F.tensor([1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 1], { dtype: "bool", shape: [1, 1, 3, 5] });
    gradcheck("sdpa bool mask", (a, b, c) => F.sdpa(a, b, c, { mask: bmask }), [q, k, v]);
    const amask = r64([3, 5], 42).detach();
    gradcheck("sdpa additive mask, scale", (a, b, c) => F.sdpa(a, b, c, { mask: amask, scale: 0.3 }), [q, k, v]);
  });
});
