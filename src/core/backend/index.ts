// Which backend runs the ops. Default: native when the addon loads, else ref (announced once on stderr).
// FATHOM_BACKEND=ref forces the reference backend.
import type { Backend } from "./backend.js";
import { RefBackend } from "./ref/index.js";
import { NativeBackend } from "./native/index.js";
import { loadNative, nativeLoadError } from "./native/binding.js";
import { FathomError } from "../errors.js";

export type BackendName = "ref" | "native";

const ref = new RefBackend();
let native: NativeBackend | null | undefined;
let current: Backend | undefined;
let warned = false;

function getNative(): NativeBackend | null {
  if (native === undefined) {
    const addon = loadNative();
    native = addon ? new NativeBackend(addon) : null;
  }
  return native;
}

export function nativeAvailable(): boolean { return getNative() !== null; }

export function getBackend(name?: BackendName): Backend {
  if (name === "ref") return ref;
  if (name === "native") {
    const n = getNative();
    if (!n) throw new FathomError("backend", `native backend unavailable: ${nativeLoadError()}`);
    return n;
  }
  if (!current) {
    const n = getNative();
    if (!n && !warned && process.env.FATHOM_BACKEND !== "ref") {
      warned = true;
      process.stderr.write(`[fathom] native addon unavailable (${nativeLoadError()}); using the plain-TS backend.\n`);
    }
    current = n ?? ref;
  }
  return current;
}

/** Sets the backend for all following ops. */
export function setBackend(name: BackendName): void { current = getBackend(name); }

/** Runs fn with the given backend, restoring the previous one afterwards. */
export function withBackend<T>(name: BackendName, fn: () => T): T {
  const prev = getBackend();
  current = getBackend(name);
  try { return fn(); } finally { current = prev; }
}
