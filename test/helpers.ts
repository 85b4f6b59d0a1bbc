// Shared test helpers: closeness checks with a tolerance table per dtype, finite-difference gradient checks
// in float64 on the reference backend, and running a suite once per available backend.
import assert from "node:assert/strict";
import { describe } from "node:test";
import { Tensor, randn, tensor, withBackend, nativeAvailable, type DType } from "../src/index.js";

/** Absolute and relative tolerances when comparing a kernel in `dtype` with the float64 reference. */
export const TOL: Record<string, { atol: number; rtol: number }> = {
  f64: { atol: 1e-10, rtol: 1e-9 },
  f32: { atol: 1e-5, rtol: 1e-5 },
  bf16: { atol: 2e-2, rtol: 2e-2 },
  f16: { atol: 2e-3, rtol: 2e-3 },
};

export function assertClose(actual: Tensor | number[] | ArrayLike<number>, expected: Tensor | number[] | ArrayLike<number>,
  tol: { atol: number; rtol: number } = TOL.f32, what = "values"): void {
  const a = actual instanceof Tensor ? actual.toArray() : Array.from(actual);
  const e = expected instanceof Tensor ? expected.toArray() : Array.from(expected);
  if (actual instanceof Tensor && expected instanceof Tensor) assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shapes differ`);
  assert.equal(a.length, e.length, `${what}: lengths differ`);
  let worst = -1, worstErr = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = e[i];
    if (Number.isNaN(y) && Number.isNaN(x)) continue;
    if (x === y) continue;
    const err = Math.abs(x - y) - (tol.atol + tol.rtol * Math.abs(y));
    if (!(err <= 0) && (worst < 0 || err > worstErr || Number.isNaN(err))) { worst = i; worstErr = err; }
  }
  if (worst >= 0) assert.fail(`${what}: element ${worst} is ${a[worst]}, expected ${e[worst]} (atol ${tol.atol}, rtol ${tol.rtol}; ${a.length} elements)`);
}

/** Random f64 leaf tensor requiring grad. */
export function r64(shape: number[], seed: number, scale = 1, shift = 0): Tensor {
  const t = randn(shape, { seed, dtype: "f64" });
  return tensor(t.toArray().map((v) => v * scale + shift), { dtype: "f64", shape }).requiresGrad_();
}

/**
 * Central-difference gradient check in float64 on the reference backend: compares d(Σ w·f(x))/dx from
 * backward() with (L(x+ε) − L(x−ε)) / 2ε for every element of every input.
 */
export function gradcheck(name: string, fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], o: { eps?: number; atol?: number; rtol?: number } = {}): void {
  const eps = o.eps ?? 1e-6, atol = o.atol ?? 1e-6, rtol = o.rtol ?? 1e-5;
  withBackend("ref", () => {
    for (const x of inputs) x.grad = null;
    const out = fn(...inputs);
    const w = randn(out.shape as number[], { seed: 99, dtype: "f64" });
    const loss = (t: Tensor) => { const a = t.toArray(), b = w.toArray(); let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * b[i]; return s; };
    out.mul(w).sum().backward();
    inputs.forEach((x, xi) => {
      if (!x.requiresGrad) return;
      const analytic = x.grad ? x.grad.toArray() : new Array(x.numel).fill(0);
      const data = x.data as Float64Array;
      for (let i = 0; i < x.numel; i++) {
        const j = x.offset + i;
        const keep = data[j];
        data[j] = keep + eps; const lp = loss(fn(...inputs));
        data[j] = keep - eps; const lm = loss(fn(...inputs));
        data[j] = keep;
        const num = (lp - lm) / (2 * eps);
        const err = Math.abs(analytic[i] - num);
        if (!(err <= atol + rtol * Math.abs(num)))
          assert.fail(`${name}: d/d(input ${xi})[${i}] analytic ${analytic[i]} vs numeric ${num}`);
      }
    });
  });
}

export type BackendName = "ref" | "native";
export const BACKENDS: BackendName[] = nativeAvailable() ? ["ref", "native"] : ["ref"];

/** Runs a describe block once per available backend, with that backend selected. */
export function eachBackend(title: string, body: (be: BackendName) => void): void {
  for (const be of BACKENDS) describe(`${title} [${be}]`, () => body(be));
}

export function dt(t: Tensor): DType { return t.dtype; }
