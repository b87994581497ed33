// File-system failures in words a user can act on: `describeFsError` turns an errno error into
// "is a folder", "no such file or folder", …; `fileError` wraps it with the path and, when
// given, the flag it came from.

import { FileError } from "../errors.js";

const WORDS: Record<string, string> = {
  ENOENT: "no such file or folder",
  EISDIR: "is a folder, not a file",
  ENOTDIR: "a part of the path is a file, not a folder",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EEXIST: "already exists",
  ENOSPC: "no space left on the device",
  EDQUOT: "disk quota exceeded",
  EROFS: "read-only file system",
  EMFILE: "too many open files",
  ENAMETOOLONG: "the name is too long",
  ELOOP: "too many symbolic links",
  EBUSY: "busy",
  EIO: "input/output error",
  EFBIG: "file too large",
  EXDEV: "on another device",
};

/** "is a folder, not a file (EISDIR)" for an errno error; the message otherwise. */
export function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (typeof code === "string") return WORDS[code] ? `${WORDS[code]} (${code})` : code;
  return e instanceof Error ? e.message : String(e);
}

/** Is this an error from the file system (it carries an errno code)? */
export function isFsError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === "string" && typeof (e as NodeJS.ErrnoException).syscall === "string";
}

/** A FileError "`what` PATH: cannot ACTION (words)". */
export function fileError(file: string, action: string, e: unknown, what = ""): FileError {
  return new FileError(`${what ? what + " " : ""}${file}: cannot ${action} (${describeFsError(e)})`);
}
