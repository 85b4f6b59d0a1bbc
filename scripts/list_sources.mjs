// Prints the .cc files directly inside each folder given (for binding.gyp), one per line, sorted.
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
const out = [];
for (const dir of process.argv.slice(2)) {
  if (!existsSync(dir)) continue;
  for (const f of readdirSync(dir).sort()) if (f.endsWith(".cc")) out.push(join(dir, f));
}
process.stdout.write(out.join("\n") + "\n");
