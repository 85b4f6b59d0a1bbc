// Typed errors. Every message names the op, file, tensor or field and what was expected,
// e.g. "[matmul] inner dimensions differ: [2, 3] @ [4, 5]".

export class FathomError extends Error {
  /** The op, file or component that raised it ("matmul", "safetensors", ...). */
  readonly op: string;
  constructor(op: string, message: string) {
    super(`[${op}] ${message}`);
    this.name = new.target.name;
    this.op = op;
  }
}

/** Shapes that do not fit together, or an axis out of range. */
export class ShapeError extends FathomError {}
/** A dtype the op does not accept, or two that do not mix. */
export class DTypeError extends FathomError {}
/** A file that is not what it claims: truncated, inconsistent, or out of bounds (names the file and field). */
export class FormatError extends FathomError {}
/** Autograd misuse: backward on a freed graph, a non-scalar without a gradient, ... */
export class GradError extends FathomError {}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}
