// Output locks: exclusive across processes (a second holder is refused and told who holds it),
// stale locks of dead processes on this host taken over with a message, foreign hosts never
// taken over, nested in one process, removed on release and on exit.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { LockError } from "../../src/errors.js";
import { lockFileFor, lockOutput } from "../../src/util/lock.js";
import { REPO_ROOT, tempDir } from "../helpers.js";

const LOCK_JS = path.join(REPO_ROOT, "dist", "src", "util", "lock.js");

/** A child process that takes the lock of `target`, prints "locked", and holds it until killed. */
function holder(target: string) {
  const code = `import { lockOutput } from ${JSON.stringify(LOCK_JS)}; lockOutput(${JSON.stringify(target)}, "x"); console.log("locked"); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d) => String(d).includes("locked") && resolve());
    child.on("exit", (c) => reject(new Error(`holder exited with ${c}`)));
  });
  return { child, ready };
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
  return Number(r.stdout.trim());
}

test("a lock held by another live process is refused with its pid, host and command", async () => {
  const target = path.join(tempDir(), "out.json");
  const h = holder(target);
  await h.ready;
  try {
    const t0 = performance.now();
    assert.throws(() => lockOutput(target, "--output out.json"), (e: unknown) => {
      assert.ok(e instanceof LockError);
      assert.match(e.message, /^--output out\.json: in use by another run \(pid \d+ on host /);
      assert.ok(e.message.includes(String(h.child.pid)));
      assert.ok(e.message.includes(os.hostname()));
      return true;
    });
    assert.ok(performance.now() - t0 < 1000, "refused at once");
  } finally {
    h.child.kill("SIGKILL");
    await new Promise((r) => h.child.on("exit", r));
  }
  // the holder was killed: its lock is stale now and is taken over, with a message
  const notes: string[] = [];
  const lock = lockOutput(target, "--output out.json", { onTakeover: (m) => notes.push(m) });
  assert.equal(notes.length, 1);
  assert.match(notes[0], new RegExp(`took over the lock of pid ${h.child.pid} .*no longer running`));
  assert.equal(JSON.parse(fs.readFileSync(lock.file, "utf8")).pid, process.pid);
  lock.release();
  assert.equal(fs.existsSync(lock.file), false, "release removes the lock file");
});

test("a stale lock of this host is taken over; another host's lock never is", () => {
  const target = path.join(tempDir(), "calib");
  const file = lockFileFor(target);
  assert.equal(path.basename(file), ".calib.lock");
  const dead = deadPid();
  fs.writeFileSync(file, JSON.stringify({ pid: dead, host: os.hostname(), started: "earlier", command: "pmkvq calibrate", token: "t" }));
  const notes: string[] = [];
  lockOutput(target, "--out calib", { onTakeover: (m) => notes.push(m) }).release();
  assert.match(notes.join(), new RegExp(`pid ${dead}`));
  fs.writeFileSync(file, JSON.stringify({ pid: dead, host: "some-other-host", started: "earlier", command: "pmkvq eval", token: "t" }));
  assert.throws(() => lockOutput(target, "--out calib"), /in use by another run \(pid \d+ on host some-other-host.*remove .*\.calib\.lock if that process is gone/);
  fs.writeFileSync(file, "garbage");
  assert.throws(() => lockOutput(target, "--out calib"), /unknown process/);
});

test("within one process the lock nests; the last release removes it", () => {
  const target = path.join(tempDir(), "r.json");
  const outer = lockOutput(target, "x");
  const inner = lockOutput(target, "x");
  inner.release();
  assert.ok(fs.existsSync(outer.file), "the outer holder still has it");
  inner.release(); // twice is harmless
  assert.ok(fs.existsSync(outer.file));
  outer.release();
  assert.equal(fs.existsSync(outer.file), false);
  {
    using l = lockOutput(target, "x");
    assert.ok(fs.existsSync(l.file));
  }
  assert.equal(fs.existsSync(lockFileFor(target)), false, "`using` releases it");
});

test("a process that exits (even through an error) leaves no lock behind", () => {
  const target = path.join(tempDir(), "z.json");
  const code = `import { lockOutput } from ${JSON.stringify(LOCK_JS)}; lockOutput(${JSON.stringify(target)}, "x"); throw new Error("boom");`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], { encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.equal(fs.existsSync(lockFileFor(target)), false);
});
