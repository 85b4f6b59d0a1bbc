// Scalar math for the reference backend, in float64: the definitions every native kernel is checked against.
import type { UnaryOp } from "../backend.js";

const SQRT1_2 = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** erf to ~1e-15: Taylor series for |x| < 3, a continued fraction for erfc beyond. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    // erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax, sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  if (ax > 27) return x < 0 ? -1 : 1;
  // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
  let f = ax;
  for (let n = 80; n >= 1; n--) f = ax + n / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

const sigmoid = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));

export function unaryFn(op: UnaryOp): (x: number) => number {
  switch (op) {
    case "neg": return (x) => -x;
    case "exp": return Math.exp;
    case "log": return Math.log;
    case "sqrt": return Math.sqrt;
    case "rsqrt": return (x) => 1 / Math.sqrt(x);
    case "silu": return (x) => x * sigmoid(x);
    case "gelu": return (x) => 0.5 * x * (1 + erf(x * SQRT1_2));
    case "geluTanh": return (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case "tanh": return Math.tanh;
    case "sigmoid": return sigmoid;
    case "abs": return Math.abs;
    case "square": return (x) => x * x;
    case "recip": return (x) => 1 / x;
    case "relu": return (x) => (x > 0 ? x : 0);
  }
}

/** f'(x) for each unary op (the derivation is in the comment beside it). */
export function unaryDeriv(op: UnaryOp): (x: number) => number {
  switch (op) {
    case "neg": return () => -1;
    case "exp": return Math.exp;                                   // d e^x = e^x
    case "log": return (x) => 1 / x;
    case "sqrt": return (x) => 0.5 / Math.sqrt(x);
    case "rsqrt": return (x) => -0.5 / (x * Math.sqrt(x));         // d x^-1/2 = -1/2 x^-3/2
    case "silu": return (x) => { const s = sigmoid(x); return s * (1 + x * (1 - s)); };
    case "gelu": return (x) => 0.5 * (1 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
    case "geluTanh": return (x) => {
      const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x), t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    };
    case "tanh": return (x) => { const t = Math.tanh(x); return 1 - t * t; };
    case "sigmoid": return (x) => { const s = sigmoid(x); return s * (1 - s); };
    case "abs": return (x) => (x > 0 ? 1 : x < 0 ? -1 : 0);
    case "square": return (x) => 2 * x;
    case "recip": return (x) => -1 / (x * x);
    case "relu": return (x) => (x > 0 ? 1 : 0);
  }
}
