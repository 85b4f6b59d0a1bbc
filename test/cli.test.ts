// The fathom CLI: help, the GEMM benchmark's JSON shape (tiny shapes, one short round: not a timing test),
// and errors as one line with a non-zero exit.
import assert from "node:assert/strict";
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import { nativeAvailable } from "../src/index.js";

const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", "src/cli/run.ts", ...args], { encoding: "utf8" });

test("fathom --help lists the commands", () => {
  const r = run("--help");
  assert.equal(r.status, 0);
  assert.match(r.stdout, /bench/);
});

test("fathom bench gemm --json prints the documented object", { skip: nativeAvailable() ? false : "native addon not built" }, () => {
  const r = run("bench", "gemm", "--json", "--shapes", "33x17x65,1x64x64", "--rounds", "1", "--min-ms", "1");
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  assert.equal(o.results.length, 4);
  for (const row of o.results) {
    assert.deepEqual(Object.keys(row).sort(), ["dtype", "gflops", "k", "m", "n", "numpy_gflops", "op", "ratio"]);
    assert.equal(row.op, "gemm");
    assert.ok(row.gflops > 0);
    if (row.numpy_gflops === null) assert.equal(row.ratio, null);
    // figures are rounded to 2 decimals: allow for that in the check of ratio = gflops / numpy_gflops
    else assert.ok(Math.abs(row.ratio - row.gflops / row.numpy_gflops) <= row.ratio * (0.002 + 0.006 / row.gflops + 0.006 / row.numpy_gflops), JSON.stringify(row));
  }
  assert.deepEqual(o.results.map((x: { dtype: string }) => x.dtype), ["f32", "bf16", "f32", "bf16"]);
});

test("bad flags give one line and a non-zero exit", () => {
  const r = run("bench", "gemm", "--shapes", "12x3");
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /bad shape '12x3'/);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
});

test("the native addon is built and loaded in CI", { skip: process.env.CI ? false : "only enforced when CI is set" }, () => {
  assert.ok(nativeAvailable(), "CI must build the native addon (npm ci runs node-gyp)");
});

test("FATHOM_THREADS sets the native thread pool size", { skip: nativeAvailable() ? false : "native addon not built" }, () => {
  const code = `import { loadNative } from "./src/core/backend/native/binding.ts"; console.log(loadNative().getThreads());`;
  for (const n of ["1", "3"]) {
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { encoding: "utf8", env: { ...process.env, FATHOM_THREADS: n } });
    assert.equal(r.stdout.trim(), n, r.stderr);
  }
});
