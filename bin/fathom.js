#!/usr/bin/env node
// The `fathom` CLI. Runs the compiled build (npm ci builds it through the prepare script).
import("../dist/src/cli/run.js").catch((e) => {
  if (e && e.code === "ERR_MODULE_NOT_FOUND") {
    process.stderr.write("fathom: the TypeScript build is missing; run `npm run build` first\n");
    process.exit(1);
  }
  throw e;
});
