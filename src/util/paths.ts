// Input and output paths checked before any work starts, so that a run never fails at its end
// because an output cannot be written. Each check names the flag and says what is wrong.

import fs from "node:fs";
import path from "node:path";
import { FileError } from "../errors.js";
import { describeFsError } from "./fs-errors.js";

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    if (code === "ENOTDIR") return null; // a parent is a file: reported by the ancestor walk
    throw e;
  }
}

function label(flag: string, p: string): string {
  return flag ? `${flag} ${p}` : p;
}

/** The nearest existing ancestor of p must be a writable folder (so p can be created). */
function checkCreatable(p: string, flag: string): void {
  let dir = path.dirname(path.resolve(p));
  for (;;) {
    const st = statOrNull(dir);
    if (st) {
      if (!st.isDirectory()) throw new FileError(`${label(flag, p)}: cannot be created, ${dir} is a file, not a folder`);
      try {
        fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
      } catch (e) {
        throw new FileError(`${label(flag, p)}: cannot be created in ${dir} (${describeFsError(e)})`);
      }
      return;
    }
    const up = path.dirname(dir);
    if (up === dir) return;
    dir = up;
  }
}

/** An output file: a file (or nothing yet) whose folder exists or can be made, writable. */
export function checkOutputFile(file: string, flag = ""): void {
  if (file.trim() === "") throw new FileError(`${flag || "output"}: the path is empty`);
  const st = statOrNull(file);
  if (st) {
    if (st.isDirectory()) throw new FileError(`${label(flag, file)}: is a folder, not a file`);
    try {
      fs.accessSync(file, fs.constants.W_OK);
    } catch (e) {
      throw new FileError(`${label(flag, file)}: cannot be written (${describeFsError(e)})`);
    }
    checkCreatable(file, flag); // the temp file of the atomic write goes beside it
    return;
  }
  checkCreatable(file, flag);
}

/** An output folder: a folder (or nothing yet) that exists or can be made, writable. */
export function checkOutputDir(dir: string, flag = ""): void {
  if (dir.trim() === "") throw new FileError(`${flag || "output"}: the path is empty`);
  const st = statOrNull(dir);
  if (st) {
    if (!st.isDirectory()) throw new FileError(`${label(flag, dir)}: is a file, not a folder`);
    try {
      fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
    } catch (e) {
      throw new FileError(`${label(flag, dir)}: cannot be written (${describeFsError(e)})`);
    }
    return;
  }
  checkCreatable(dir, flag);
}

function checkReadable(p: string, flag: string, mode: number): void {
  try {
    fs.accessSync(p, mode);
  } catch (e) {
    throw new FileError(`${label(flag, p)}: cannot be read (${describeFsError(e)})`);
  }
}

function mustExist(p: string, flag: string): fs.Stats {
  try {
    return fs.statSync(p);
  } catch (e) {
    throw new FileError(`${label(flag, p)}: ${describeFsError(e)}`);
  }
}

/** An input file: exists, is a file, readable. */
export function checkInputFile(file: string, flag = ""): void {
  const st = mustExist(file, flag);
  if (st.isDirectory()) throw new FileError(`${label(flag, file)}: is a folder, not a file`);
  checkReadable(file, flag, fs.constants.R_OK);
}

/** An input folder: exists, is a folder, readable. */
export function checkInputDir(dir: string, flag = ""): void {
  const st = mustExist(dir, flag);
  if (!st.isDirectory()) throw new FileError(`${label(flag, dir)}: is a file, not a folder`);
  checkReadable(dir, flag, fs.constants.R_OK | fs.constants.X_OK);
}

/** An input that may be a file or a folder (e.g. calibration text). */
export function checkInputPath(p: string, flag = ""): void {
  const st = mustExist(p, flag);
  checkReadable(p, flag, st.isDirectory() ? fs.constants.R_OK | fs.constants.X_OK : fs.constants.R_OK);
}
