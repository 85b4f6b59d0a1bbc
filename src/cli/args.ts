// Argument parsers shared by the CLI commands (they throw commander's InvalidArgumentError with a clear message).
import { InvalidArgumentError } from "commander";

export const int = (name: string, min = 1) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
  return n;
};

export function parseShapes(v: string): [number, number, number][] {
  return v.split(",").map((s) => {
    const p = s.split(/[x×]/).map(Number);
    if (p.length !== 3 || p.some((d) => !Number.isInteger(d) || d < 1)) throw new InvalidArgumentError(`bad shape '${s}' (expected MxNxK, e.g. 1024x1024x1024)`);
    return p as [number, number, number];
  });
}

export function parseIds(v: string): number[] {
  const ids = v.split(",").map((s) => s.trim());
  if (!ids.length || ids.some((s) => !/^\d+$/.test(s))) throw new InvalidArgumentError(`'${v}' is not a comma-separated list of token ids`);
  return ids.map(Number);
}
