// Reverse-mode autograd with graph nodes on tensors. An op whose inputs require grad records a Node holding a
// backward closure; `backward()` walks the nodes in reverse topological order, frees each closure (and the
// tensors it saved) as soon as it has run, and accumulates leaf gradients into `.grad`. Backward closures
// are written with ordinary ops and run with grad recording off.
import { GradError } from "./errors.js";
import type { Tensor } from "./tensor.js";

export type BackwardFn = (gy: Tensor) => (Tensor | null)[];

export class Node {
  constructor(readonly op: string, readonly inputs: Tensor[], public backward: BackwardFn | null) {}
}

let gradEnabled = true;

export function isGradEnabled(): boolean { return gradEnabled; }

/** Runs fn without recording the graph (inference, optimizer steps). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try { return fn(); } finally { gradEnabled = prev; }
}

/** Records a node for `out` if grad is on and any input requires grad. Returns out. */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: BackwardFn): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.gradFn = new Node(op, inputs, backward);
  }
  return out;
}

export function runBackward(root: Tensor, grad: Tensor | undefined, ones: (t: Tensor) => Tensor, add: (a: Tensor, b: Tensor) => Tensor): void {
  if (!root.requiresGrad) throw new GradError("backward", "tensor does not require grad (no input of its graph has requiresGrad)");
  if (!grad) {
    if (root.numel !== 1) throw new GradError("backward", `grad can be implicitly created only for a single element, got shape [${root.shape.join(", ")}]`);
    grad = ones(root);
  }
  // Topological order over tensors reachable through gradFn.
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    if (i === 0) { if (seen.has(t)) { stack.pop(); continue; } seen.add(t); }
    const node = t.gradFn;
    if (node && i < node.inputs.length) { top[1]++; const c = node.inputs[i]; if (!seen.has(c) && c.requiresGrad) stack.push([c, 0]); }
    else { stack.pop(); order.push(t); }
  }
  const grads = new Map<Tensor, Tensor>([[root, grad]]);
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const node = t.gradFn;
      if (!node) {
        t.grad = t.grad ? add(t.grad, g) : g;
        continue;
      }
      if (!node.backward) throw new GradError("backward", `graph of '${node.op}' was already freed by an earlier backward()`);
      const gin = node.backward(g);
      node.backward = null;
      for (let j = 0; j < node.inputs.length; j++) {
        const inp = node.inputs[j], gi = gin[j];
        if (!gi || !inp.requiresGrad) continue;
        const cur = grads.get(inp);
        grads.set(inp, cur ? add(cur, gi) : gi);
      }
    }
  } finally { gradEnabled = prev; }
}
