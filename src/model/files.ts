// Opening a checkpoint file for reading, with the failures a user can act on as CheckpointErrors.

import fs from "node:fs";
import { CheckpointError } from "../errors.js";
import { describeFsError } from "../util/fs-errors.js";

/** Open a regular file for reading: its descriptor and size; a folder, a missing file or no permission is a CheckpointError. */
export function openForReading(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (e) {
    throw new CheckpointError(`${file}: cannot open (${describeFsError(e)})`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new CheckpointError(`${file}: cannot open (${st.isDirectory() ? "is a folder, not a file" : "not a regular file"})`);
    return { fd, size: st.size };
  } catch (e) {
    fs.closeSync(fd);
    throw e instanceof CheckpointError ? e : new CheckpointError(`${file}: cannot open (${describeFsError(e)})`);
  }
}

/** Read exactly `dest.length` bytes at `position`; a short read or an I/O error is a CheckpointError. */
export function readExactly(fd: number, file: string, dest: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < dest.length) {
    let got: number;
    try {
      got = fs.readSync(fd, dest, done, dest.length - done, position + done);
    } catch (e) {
      throw new CheckpointError(`${file}: cannot read ${what} (${describeFsError(e)})`);
    }
    if (got === 0) throw new CheckpointError(`${file}: ${what}: unexpected end of file (truncated?)`);
    done += got;
  }
}
