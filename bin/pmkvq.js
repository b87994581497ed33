#!/usr/bin/env node
// Entry point of the `pmkvq` command; the code lives in dist/ (built by `npm install`).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const entry = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write("pmkvq: not built yet — run `npm install` (or `npm run build`) in the pm-kvq folder\n");
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
