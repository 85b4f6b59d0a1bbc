// Reading config.json fields with validation: every error names the file and the field and says what was expected.
import { FathomError } from "../core/errors.js";

export type RawConfig = Record<string, unknown>;

export class ConfigReader {
  constructor(readonly raw: RawConfig, readonly source: string) {}
  private fail(key: string, want: string): never {
    throw new FathomError("config", `${this.source}: field '${key}' must be ${want}, got ${JSON.stringify(this.raw[key])}`);
  }
  int(key: string, dflt?: number, min = 0): number {
    const v = this.raw[key] ?? dflt;
    if (v === undefined) throw new FathomError("config", `${this.source}: missing field '${key}' (an integer)`);
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) this.fail(key, `an integer ≥ ${min}`);
    return v;
  }
  intOrNull(key: string, dflt: number | null = null): number | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return dflt;
    return this.int(key);
  }
  num(key: string, dflt?: number): number {
    const v = this.raw[key] ?? dflt;
    if (v === undefined) throw new FathomError("config", `${this.source}: missing field '${key}' (a number)`);
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(key, "a finite number");
    return v;
  }
  bool(key: string, dflt: boolean): boolean {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== "boolean") this.fail(key, "true or false");
    return v;
  }
  str(key: string, dflt?: string, allowed?: string[]): string {
    const v = this.raw[key] ?? dflt;
    if (typeof v !== "string") this.fail(key, allowed ? `one of ${allowed.join(", ")}` : "a string");
    if (allowed && !allowed.includes(v)) this.fail(key, `one of ${allowed.join(", ")}`);
    return v;
  }
  obj<T>(key: string): T | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== "object" || Array.isArray(v)) this.fail(key, "an object or null");
    return v as T;
  }
  /** Checks a derived constraint, naming the fields involved. */
  check(ok: boolean, msg: string): void { if (!ok) throw new FathomError("config", `${this.source}: ${msg}`); }
}
