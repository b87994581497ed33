import fs from "node:fs";
import path from "node:path";
import { PmkvqError } from "../errors.js";

/** Write a file atomically: a temp file beside it, then rename (never half-written). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}


/** Read a JSON file with an error that names it. */
export function readJsonFile(file: string, ErrorClass: new (m: string) => Error = PmkvqError): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ErrorClass(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ErrorClass(`${file}: not valid JSON (${(e as Error).message})`);
  }
}
