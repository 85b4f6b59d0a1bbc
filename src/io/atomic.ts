// Atomic file writes: write a temporary file in the target's directory, fsync it, then rename it over the target.
// A failure at any point removes the temporary file and leaves the target as it was.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { FathomError } from "../core/errors.js";

/** Writes through `write(fd)` into a temp file, then renames it to `path`. */
export function writeAtomic(path: string, write: (fd: number) => void, op = "io"): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
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
    // Errors of the caller's own (a tensor that cannot be read, ...) pass through; file-system errors get named.
    if (e instanceof FathomError || !(e as NodeJS.ErrnoException).code) throw e;
    throw new FathomError(op, `${path}: cannot write: ${(e as Error).message}`);
  }
}

/** Writes all bytes of a buffer at the current position, in pieces of at most 1 GiB (Node refuses single writes over 2 GiB). */
export function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, Math.min(data.length - off, 1 << 30));
}

export function writeTextAtomic(path: string, text: string, op = "io"): void {
  writeAtomic(path, (fd) => writeAll(fd, new TextEncoder().encode(text)), op);
}
