// An exclusive lock beside an output (file or folder): `.<name>.lock` in the same folder,
// holding the holder's pid, host, start time and command line. It appears atomically with its
// content (written to a temp file, then hard-linked into place, which fails if a lock exists).
// A lock left by a process of this host that is no longer running is taken over (under a
// second, short-lived lock, so two processes never both take over the same stale lock).

import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { LockError } from "../errors.js";
import { fileError } from "./fs-errors.js";

export interface LockHolder {
  pid: number;
  host: string;
  started: string;
  command: string;
  /** Unique per acquisition: a lock is only ever removed by the one who made it. */
  token: string;
}

export interface OutputLock {
  /** The lock file. */
  readonly file: string;
  readonly holder: LockHolder;
  release(): void;
  [Symbol.dispose](): void;
}

export interface LockOptions {
  /** Told when a stale lock (its process has died) is taken over. */
  onTakeover?: (message: string) => void;
}

/** `.<name>.lock` beside `target`. */
export function lockFileFor(target: string): string {
  const abs = path.resolve(target);
  return path.join(path.dirname(abs), `.${path.basename(abs)}.lock`);
}

function readHolder(file: string): LockHolder | null {
  try {
    const h = JSON.parse(fs.readFileSync(file, "utf8")) as Partial<LockHolder>;
    if (typeof h.pid === "number" && typeof h.host === "string" && typeof h.token === "string") {
      return { pid: h.pid, host: h.host, started: String(h.started ?? "?"), command: String(h.command ?? "?"), token: h.token };
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
  }
  // unreadable or not ours: treat as held by an unknown process
  return { pid: -1, host: "?", started: "?", command: "?", token: "?" };
}

/** Is the process of this lock gone (only knowable for this host)? */
function isStale(h: LockHolder): boolean {
  if (h.host !== os.hostname() || h.pid <= 0) return false;
  try {
    process.kill(h.pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/** Create `file` holding `content` only if it does not exist (atomic, with its content). */
function createExclusive(file: string, content: string): boolean {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
  fs.writeFileSync(tmp, content);
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function describeHolder(h: LockHolder): string {
  if (h.pid < 0) return "an unknown process (the lock file is not readable as a pm-kvq lock)";
  return `pid ${h.pid} on host ${h.host}, started ${h.started}${h.command !== "?" ? `: ${h.command}` : ""}`;
}

/** Locks this process holds, by lock file: taking one again nests (synchronous code only). */
const heldHere = new Map<string, { lock: OutputLock; count: number }>();

/**
 * Take the lock of `target` or throw LockError naming the holder. `what` names the output in
 * the message (e.g. "--output responses/x.json"). Within one process the lock nests: a
 * command may take it before loading a model and the library again for its run.
 */
export function lockOutput(target: string, what: string, opts: LockOptions = {}): OutputLock {
  const file = lockFileFor(target);
  let entry = heldHere.get(file);
  if (entry) entry.count++;
  else {
    entry = { lock: acquire(file, what, opts), count: 1 };
    heldHere.set(file, entry);
  }
  const held = entry;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (--held.count === 0) {
      heldHere.delete(file);
      held.lock.release();
    }
  };
  return { file, holder: held.lock.holder, release, [Symbol.dispose]: release };
}

function acquire(file: string, what: string, opts: LockOptions): OutputLock {
  const holder: LockHolder = {
    pid: process.pid,
    host: os.hostname(),
    started: new Date().toISOString(),
    command: ["pmkvq", ...process.argv.slice(2)].join(" ").slice(0, 300),
    token: crypto.randomBytes(8).toString("hex"),
  };
  const content = JSON.stringify(holder) + "\n";
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    for (let attempt = 0; ; attempt++) {
      if (createExclusive(file, content)) break;
      const other = readHolder(file);
      if (other === null) continue; // released between our two looks: try again
      if (!isStale(other) || attempt > 3) {
        throw new LockError(`${what}: in use by another run (${describeHolder(other)}); wait for it to finish, or remove ${file} if that process is gone`);
      }
      takeOver(file, other, what, opts);
    }
  } catch (e) {
    if (e instanceof LockError) throw e;
    throw fileError(file, "create the lock", e, what);
  }
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.removeListener("exit", release);
    const now = readHolder(file);
    if (now && now.token === holder.token) fs.rmSync(file, { force: true });
  };
  process.on("exit", release);
  return { file, holder, release, [Symbol.dispose]: release };
}

/** Remove a stale lock, under a takeover lock so that only one process does it. */
function takeOver(file: string, stale: LockHolder, what: string, opts: LockOptions): void {
  const guard = `${file}.takeover`;
  const mine = JSON.stringify({ pid: process.pid, host: os.hostname(), started: new Date().toISOString(), token: "takeover" });
  if (!createExclusive(guard, mine)) {
    const g = readHolder(guard);
    if (g && isStale(g)) fs.rmSync(guard, { force: true }); // a taker that died mid-takeover
    return; // another process is taking over: look again
  }
  try {
    const now = readHolder(file);
    if (now && now.token === stale.token) {
      fs.rmSync(file, { force: true });
      opts.onTakeover?.(`${what}: took over the lock of pid ${stale.pid} (started ${stale.started}), which is no longer running`);
    }
  } finally {
    fs.rmSync(guard, { force: true });
  }
}
