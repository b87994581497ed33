import fs from "node:fs";
import path from "node:path";
import { PmkvqError } from "../errors.js";
import { describeFsError, fileError, isFsError } from "./fs-errors.js";
import { parseJsonStrict, type ErrorClass } from "./json.js";

let tempCount = 0;

/**
 * Write a file atomically: a temp file beside it, then rename (never half-written). A file-system
 * failure (missing or read-only folder, target is a folder, disk full) is a FileError naming the
 * file; the temp file is removed whatever happens.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.${tempCount++}.tmp`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // the folder itself is unusable: there is no temp file to remove
    }
    throw isFsError(e) ? fileError(file, "write", e) : e;
  }
}

/** Read a text file; a file-system failure is an `ErrorClass` "FILE: cannot read (is a folder, not a file (EISDIR))". */
export function readTextFile(file: string, ErrorClass: ErrorClass = PmkvqError): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ErrorClass(`${file}: cannot read (${isFsError(e) ? describeFsError(e) : (e as Error).message})`);
  }
}

/** Read a JSON file (duplicate keys refused, see util/json.ts) with errors that name it. */
export function readJsonFile(file: string, ErrorClass: ErrorClass = PmkvqError): unknown {
  return parseJsonStrict(readTextFile(file, ErrorClass), file, ErrorClass);
}

/** "null", "a list", "a number"… — what a JSON value is, for messages. */
export function jsonKind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  return `a ${typeof v}`;
}

/** Read a JSON file whose top level must be an object (not null, a list, a number or a string). */
export function readJsonObject(file: string, ErrorClass: ErrorClass = PmkvqError): Record<string, unknown> {
  const v = readJsonFile(file, ErrorClass);
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new ErrorClass(`${file}: expected a JSON object {…} at the top level, found ${jsonKind(v)}`);
  }
  return v as Record<string, unknown>;
}
