// Opens a file for zero-copy tensor views: memory-mapped through the addon when it is loaded (pages are read on
// first touch and shared with the page cache), else read into memory once.
import { readFileSync, statSync } from "node:fs";
import { FathomError } from "../core/errors.js";
import { loadNative } from "../core/backend/native/binding.js";

export interface MappedFile { path: string; buffer: ArrayBuffer; mapped: boolean }

export function mapFile(path: string): MappedFile {
  let size: number;
  try { size = statSync(path).size; } catch (e) { throw new FathomError("io", `cannot open ${path}: ${(e as Error).message}`); }
  const addon = loadNative();
  if (addon && size > 0) {
    try { return { path, buffer: addon.mapFile(path), mapped: true }; } catch (e) { throw new FathomError("io", (e as Error).message); }
  }
  const b = readFileSync(path);
  const buffer = b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? (b.buffer as ArrayBuffer) : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  return { path, buffer, mapped: false };
}
