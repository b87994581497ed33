// The ZIP reader against archives written by Python's zipfile (stored and deflated) and by a
// torch-like writer (64-byte-aligned data, ZIP64 records; Python's zipfile reads it back in
// make_fixtures.py), and against damaged archives: every failure is a FileError.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { FileError, PmkvqError } from "../../src/errors.js";
import { crc32, ZipArchive } from "../../src/util/zip-reader.js";
import { REPO_ROOT, seededRandom } from "../helpers.js";

const FIXTURES = path.join(REPO_ROOT, "test", "fixtures", "torch");
const bytesOf = (name: string) => new Uint8Array(fs.readFileSync(path.join(FIXTURES, name)));
const RECORDS = ["data.pkl", "byteorder", "data/0", "data/1", "data/2", "data/3", "data/4", "version"];

test("crc32 of the standard check string is 0xcbf43926", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test("a stored archive from Python's zipfile: torch's records in order, byteorder and version as written", () => {
  const zip = new ZipArchive(bytesOf("tensors.pt"), "tensors.pt");
  assert.deepEqual([...zip.entries.keys()], RECORDS.map((r) => `tensors/${r}`));
  assert.equal(new TextDecoder().decode(zip.read("tensors/byteorder")), "little");
  assert.equal(new TextDecoder().decode(zip.read("tensors/version")), "3\n");
  for (const e of zip.entries.values()) assert.equal(e.method, 0);
});

test("deflated and torch-like (aligned, ZIP64) archives hold the same bytes as the stored one", () => {
  const stored = new ZipArchive(bytesOf("tensors.pt"), "tensors.pt");
  for (const name of ["tensors_deflated.pt", "tensors_torch_like.pt"]) {
    const other = new ZipArchive(bytesOf(name), name);
    assert.deepEqual([...other.entries.keys()], RECORDS.map((r) => `archive/${r}`), name);
    for (const r of RECORDS) assert.deepEqual(other.read(`archive/${r}`), stored.read(`tensors/${r}`), `${name} ${r}`);
  }
  const deflated = new ZipArchive(bytesOf("tensors_deflated.pt"), "d");
  assert.equal(deflated.entries.get("archive/data.pkl")!.method, 8);
  // torch aligns each record's data to 64 bytes through the local header's extra field
  const like = new ZipArchive(bytesOf("tensors_torch_like.pt"), "t");
  const e = like.entries.get("archive/data/0")!;
  const view = new DataView(like.bytes.buffer, like.bytes.byteOffset);
  const dataStart = e.localHeaderOffset + 30 + view.getUint16(e.localHeaderOffset + 26, true) + view.getUint16(e.localHeaderOffset + 28, true);
  assert.equal(dataStart % 64, 0);
});

test("every truncation of an archive is a FileError, never another error", () => {
  const full = bytesOf("original/max_keys.pt");
  for (let n = 0; n < full.length; n += 7) {
    assert.throws(() => new ZipArchive(full.subarray(0, n), "cut").read("max_keys/data.pkl"), FileError, `length ${n}`);
  }
});

test("a flipped data byte fails its CRC-32; flipped header bytes fail as FileErrors or read correctly", () => {
  const full = bytesOf("tensors.pt");
  const zip = new ZipArchive(full, "x");
  const e = zip.entries.get("tensors/data/0")!;
  const bad = full.slice();
  bad[e.localHeaderOffset + 30 + "tensors/data/0".length + 3] ^= 0x10;
  assert.throws(() => new ZipArchive(bad, "flipped").read("tensors/data/0"), (err: Error) => err instanceof FileError && /CRC-32/.test(err.message));
  const rand = seededRandom(7);
  for (let k = 0; k < 300; k++) {
    const b = full.slice();
    b[Math.floor(rand() * b.length)] ^= 1 << Math.floor(rand() * 8);
    try {
      const z = new ZipArchive(b, "flip");
      for (const name of z.entries.keys()) z.read(name);
    } catch (err) {
      assert.ok(err instanceof PmkvqError, `flip ${k}: ${(err as Error).stack}`);
    }
  }
});

test("counts and offsets beyond the file are refused before anything is allocated", () => {
  const full = bytesOf("tensors.pt");
  const eocd = full.length - 22;
  const many = full.slice();
  new DataView(many.buffer).setUint16(eocd + 10, 0xfffe, true); // entries: far more than the directory holds
  assert.throws(() => new ZipArchive(many, "many"), /claims 65534 entries/);
  const far = full.slice();
  new DataView(far.buffer).setUint32(eocd + 16, 0xfffffff0, true); // central directory offset past the end
  assert.throws(() => new ZipArchive(far, "far"), /runs past the end/);
  const like = bytesOf("tensors_torch_like.pt");
  const locator = like.length - 22 - 20;
  const lost = like.slice();
  new DataView(lost.buffer).setBigUint64(locator + 8, 1n << 40n, true);
  assert.throws(() => new ZipArchive(lost, "zip64"), (err: Error) => err instanceof FileError && /beyond the file/.test(err.message));
});

test("compression methods other than stored and deflate are named and refused", () => {
  const zip = new ZipArchive(bytesOf("damaged/bzip2.pt"), "bzip2.pt");
  assert.throws(() => zip.read("archive/data.pkl"), (err: Error) => err instanceof FileError && /bzip2 \(method 12\)/.test(err.message));
});

test("not a ZIP: too short, or no end record", () => {
  assert.throws(() => new ZipArchive(new Uint8Array(10), "short"), /too short/);
  assert.throws(() => new ZipArchive(new Uint8Array(100), "zeros"), /no ZIP end-of-central-directory record/);
});
