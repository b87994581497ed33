import fs from "node:fs";

let version: string | null = null;

/** This package's version, from its package.json. */
export function packageVersion(): string {
  if (version === null) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version?: unknown };
      version = typeof pkg.version === "string" ? pkg.version : "unknown";
    } catch {
      version = "unknown";
    }
  }
  return version;
}
