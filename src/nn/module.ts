// Module: named parameters, buffers and children with Hugging Face state-dict names ("model.layers.0.mlp.up_proj.weight").
// Subclasses register what they own; names are the property names, exactly as in the PyTorch modules.
import { DTypeError, FathomError, ShapeError, fmtShape } from "../core/errors.js";
import { isFloat } from "../core/dtype.js";
import { Tensor } from "../core/tensor.js";
import type { DType } from "../core/dtype.js";

export abstract class Module {
  private readonly _params: string[] = [];
  private readonly _buffers: string[] = [];
  private readonly _children: string[] = [];
  training = false;

  /** Registers this[name] as a parameter (it takes gradients when training). */
  protected param(name: string, t: Tensor | null): void {
    (this as unknown as Record<string, unknown>)[name] = t;
    if (!this._params.includes(name)) this._params.push(name);
  }
  /** Registers this[name] as a buffer: saved and loaded, never trained by gradient (e.g. a router's bias). */
  protected buffer(name: string, t: Tensor | null): void {
    (this as unknown as Record<string, unknown>)[name] = t;
    if (!this._buffers.includes(name)) this._buffers.push(name);
  }
  /** Registers this[name] as a child module (or a list of them, named by index). */
  protected child<M extends Module | Module[]>(name: string, m: M): M {
    (this as unknown as Record<string, unknown>)[name] = m;
    if (!this._children.includes(name)) this._children.push(name);
    return m;
  }

  private get(name: string): unknown { return (this as unknown as Record<string, unknown>)[name]; }
  private set(name: string, v: unknown): void { (this as unknown as Record<string, unknown>)[name] = v; }

  /** Parameters and buffers by full name; `params: true` leaves buffers out. */
  *namedTensors(prefix = "", o: { params?: boolean } = {}): Generator<[string, Tensor, Module, string]> {
    const names = o.params ? this._params : [...this._params, ...this._buffers];
    for (const n of names) { const t = this.get(n) as Tensor | null; if (t) yield [prefix + n, t, this, n]; }
    for (const c of this._children) {
      const m = this.get(c) as Module | Module[];
      if (Array.isArray(m)) for (let i = 0; i < m.length; i++) yield* m[i].namedTensors(`${prefix}${c}.${i}.`, o);
      else yield* m.namedTensors(`${prefix}${c}.`, o);
    }
  }

  namedParameters(): [string, Tensor][] { return [...this.namedTensors("", { params: true })].map(([n, t]) => [n, t]); }
  parameters(): Tensor[] { return this.namedParameters().map(([, t]) => t); }
  stateDict(): Map<string, Tensor> { return new Map([...this.namedTensors()].map(([n, t]) => [n, t])); }

  /**
   * Replaces parameters and buffers with the given tensors (no copy: the module then views them). Shapes must match;
   * dtype converts when `dtype` is given. strict: every entry must be used and every parameter provided.
   */
  loadStateDict(sd: Map<string, Tensor> | ((name: string) => Tensor | undefined),
    o: { strict?: boolean; dtype?: DType; source?: string; onProgress?: (done: number, total: number) => void } = {}): void {
    const get = typeof sd === "function" ? sd : (n: string) => sd.get(n);
    const used = new Set<string>();
    const where = o.source ? ` in ${o.source}` : "";
    const all = [...this.namedTensors()];
    let done = 0;
    for (const [name, cur, mod, local] of all) {
      o.onProgress?.(++done, all.length);
      let t = get(name);
      if (!t) {
        if (o.strict !== false) throw new FathomError("loadStateDict", `missing tensor '${name}'${where} (expected shape ${fmtShape(cur.shape)})`);
        continue;
      }
      used.add(name);
      if (t.shape.length !== cur.shape.length || t.shape.some((d, i) => d !== cur.shape[i]))
        throw new ShapeError("loadStateDict", `tensor '${name}'${where} has shape ${fmtShape(t.shape)}, the config expects ${fmtShape(cur.shape)}`);
      if (isFloat(cur.dtype) && !isFloat(t.dtype))
        throw new DTypeError("loadStateDict", `tensor '${name}'${where} has dtype ${t.dtype}, expected a floating dtype`);
      const dt = mod._buffers.includes(local) ? cur.dtype : (o.dtype ?? t.dtype);
      if (t.dtype !== dt) t = t.to(dt).detach();
      mod.set(local, t);
    }
    if (o.strict !== false && typeof sd !== "function") {
      const extra = [...sd.keys()].filter((k) => !used.has(k));
      if (extra.length) throw new FathomError("loadStateDict", `unexpected tensor${extra.length > 1 ? "s" : ""}${where}: ${extra.slice(0, 5).join(", ")}${extra.length > 5 ? ", ..." : ""}`);
    }
  }

  train(on = true): this {
    this.training = on;
    for (const c of this._children) {
      const m = this.get(c) as Module | Module[];
      for (const x of Array.isArray(m) ? m : [m]) x.train(on);
    }
    return this;
  }
  eval(): this { return this.train(false); }

  /** Marks every parameter as requiring grad (or not). */
  requiresGrad_(on = true): this { for (const p of this.parameters()) p.requiresGrad_(on); return this; }

  /** Total number of parameter elements. */
  numParameters(): number { return this.parameters().reduce((a, p) => a + p.numel, 0); }
}
