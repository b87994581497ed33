// Replace a generated section of README.md between <!-- name --> and <!-- /name --> markers.

import fs from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "./common.js";

export function writeReadmeSection(name: string, body: string): void {
  const file = path.join(REPO_ROOT, "README.md");
  const text = fs.readFileSync(file, "utf8");
  const open = `<!-- ${name} -->`;
  const close = `<!-- /${name} -->`;
  const i = text.indexOf(open);
  const j = text.indexOf(close);
  if (i < 0 || j < i) throw new Error(`README.md has no ${open} … ${close} section`);
  fs.writeFileSync(file, text.slice(0, i + open.length) + "\n" + body.trim() + "\n" + text.slice(j));
}
