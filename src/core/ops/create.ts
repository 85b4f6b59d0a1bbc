// Tensor creation: from JS values, constants, ranges and seeded random numbers.
import { allocate, encode, isFloat, checkDType, type DType } from "../dtype.js";
import { FathomError } from "../errors.js";
import { checkShape, numel } from "../shape.js";
import { Tensor, shapeOf } from "../tensor.js";

export interface CreateOptions { dtype?: DType; requiresGrad?: boolean }

/** A tensor from nested arrays or a flat array with a shape. */
export function tensor(values: number | ArrayLike<number> | unknown[], opts: CreateOptions & { shape?: number[] } = {}): Tensor {
  const dtype = checkDType(opts.dtype ?? "f32", "tensor");
  let flat: ArrayLike<number>;
  let shape: number[];
  if (typeof values === "number") { flat = [values]; shape = opts.shape ?? []; }
  else if (Array.isArray(values) && values.length > 0 && Array.isArray(values[0])) {
    shape = [];
    let v: unknown = values;
    while (Array.isArray(v)) { shape.push(v.length); v = v[0]; }
    flat = (values as unknown[]).flat(shape.length - 1) as number[];
    if (flat.length !== numel(shape)) throw new FathomError("tensor", `ragged nested array: expected ${numel(shape)} values for shape [${shape}]`);
    if (opts.shape) shape = shapeOf(flat, opts.shape, "tensor");
  } else { flat = values as ArrayLike<number>; shape = shapeOf(flat, opts.shape, "tensor"); }
  const data = allocate(dtype, flat.length);
  for (let i = 0; i < flat.length; i++) data[i] = encode(dtype, Number(flat[i]));
  const t = new Tensor(data, dtype, shape);
  if (opts.requiresGrad) t.requiresGrad_();
  return t;
}

export function full(shape: readonly number[], value: number, dtype: DType = "f32"): Tensor {
  const s = checkShape(shape, "full");
  const data = allocate(dtype, numel(s));
  const v = encode(dtype, value);
  if (v !== 0) data.fill(v);
  return new Tensor(data, dtype, s);
}
export const zeros = (shape: readonly number[], dtype: DType = "f32") => full(shape, 0, dtype);
export const ones = (shape: readonly number[], dtype: DType = "f32") => full(shape, 1, dtype);
export const zerosLike = (t: Tensor) => full(t.shape, 0, t.dtype);
export const onesLike = (t: Tensor) => full(t.shape, 1, t.dtype);

export function arange(start: number, end?: number, step = 1, dtype: DType = "i32"): Tensor {
  if (end === undefined) { end = start; start = 0; }
  if (step === 0) throw new FathomError("arange", "step must be non-zero");
  const n = Math.max(0, Math.ceil((end - start) / step));
  const data = allocate(dtype, n);
  for (let i = 0; i < n; i++) data[i] = encode(dtype, start + i * step);
  return new Tensor(data, dtype, [n]);
}

// ---- seeded random numbers: xoshiro128** seeded through splitmix32.
export class Generator {
  private s = new Uint32Array(4);
  constructor(seed = 0) { this.seed(seed); }
  seed(seed: number): void {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 11);
    return r;
  }
  /** Uniform in [0, 1) with 53 random bits. */
  next(): number { return ((this.nextU32() >>> 5) * 67108864 + (this.nextU32() >>> 6)) / 9007199254740992; }
  /** Standard normal (Box–Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}
const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

let globalGen = new Generator(0);
/** Seeds the default generator used when no `seed` or `generator` is given. */
export function manualSeed(seed: number): void { globalGen = new Generator(seed); }

export interface RandomOptions { dtype?: DType; seed?: number; generator?: Generator }

function genFor(o: RandomOptions): Generator { return o.generator ?? (o.seed !== undefined ? new Generator(o.seed) : globalGen); }

function fillRandom(shape: readonly number[], o: RandomOptions, sample: (g: Generator) => number, op: string): Tensor {
  const dtype = o.dtype ?? "f32";
  if (!isFloat(dtype)) throw new FathomError(op, `needs a floating dtype, got ${dtype}`);
  const s = checkShape(shape, op);
  const data = allocate(dtype, numel(s));
  const g = genFor(o);
  for (let i = 0; i < data.length; i++) data[i] = encode(dtype, sample(g));
  return new Tensor(data, dtype, s);
}

export const randn = (shape: readonly number[], o: RandomOptions = {}) => fillRandom(shape, o, (g) => g.normal(), "randn");
export const rand = (shape: readonly number[], o: RandomOptions = {}) => fillRandom(shape, o, (g) => g.next(), "rand");

export function randint(low: number, high: number, shape: readonly number[], o: RandomOptions = {}): Tensor {
  const s = checkShape(shape, "randint");
  if (!(high > low)) throw new FathomError("randint", `high (${high}) must exceed low (${low})`);
  const g = genFor(o);
  const data = new Int32Array(numel(s));
  for (let i = 0; i < data.length; i++) data[i] = low + Math.floor(g.next() * (high - low));
  return new Tensor(data, "i32", s);
}

