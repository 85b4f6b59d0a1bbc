// Atomic file writes: write a temporary file in the target's directory, fsync it, then rename it over the target.
// A failure at any point removes the temporary file and leaves the target as it was.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { FathomError } from "../core/errors.js";

/** Writes through `write(fd)` into a temp file, then renames it to `path`. */
export function writeAtomic(path: string, write: (fd: number) => void, op = "io"): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, "wx");
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) try { closeSync(fd); } catch { /* already failing */ }
    try { unlinkSync(tmp); } catch { /* not created */ }
    if (e instanceof FathomError) throw e;
    throw new FathomError(op, `cannot write ${path}: ${(e as Error).message}`);
  }
}

/** Writes all bytes of a buffer at the current position. */
export function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}

export function writeTextAtomic(path: string, text: string, op = "io"): void {
  writeAtomic(path, (fd) => writeAll(fd, new TextEncoder().encode(text)), op);
}
