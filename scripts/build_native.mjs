// Builds the native addon with npm's bundled node-gyp against the installed Node headers.
// Without --strict a failed build is reported and tolerated: Fathom then runs on the plain-TS backend.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";

const strict = process.argv.includes("--strict") || process.env.FATHOM_NATIVE_STRICT === "1";
const require = createRequire(import.meta.url);
function findNodeGyp() {
  try { return require.resolve("node-gyp/bin/node-gyp.js"); } catch {}
  const npmDir = process.env.npm_execpath ? dirname(dirname(process.env.npm_execpath)) : "";
  for (const c of [join(npmDir, "node_modules/node-gyp/bin/node-gyp.js"),
    "/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js",
    "/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"]) if (c && existsSync(c)) return c;
  return null;
}
const gyp = findNodeGyp();
const nodedir = existsSync("/usr/include/node/node_api.h") ? ["--nodedir=/usr"] : [];
const r = gyp ? spawnSync(process.execPath, [gyp, "rebuild", "-j", "2", ...nodedir], { stdio: "inherit" }) : { status: 1 };
if (r.status !== 0) {
  const msg = gyp ? "node-gyp failed" : "node-gyp not found";
  if (strict) { console.error(`[fathom] native build failed (${msg})`); process.exit(1); }
  console.warn(`[fathom] native addon not built (${msg}); Fathom will use the plain-TS backend.`);
}
