// A model folder's identity for run settings: sha256 over the files that define it (config,
// generation config, tokenizer, chat template, weights). Files up to FULL_HASH_BYTES are hashed
// whole; larger weight files by their size, their safetensors header and SAMPLES evenly spaced
// blocks of SAMPLE_BYTES — constant time on a 16 GB checkpoint, and any fine-tune or
// re-quantization changes every block. (A deliberate edit of a few bytes between the sampled
// blocks would go unseen; `calibrate`'s manifest hashes every byte.)

import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { CheckpointError } from "../errors.js";
import { describeFsError } from "../util/fs-errors.js";

export const FULL_HASH_BYTES = 256 * 2 ** 20;
const SAMPLES = 64;
const SAMPLE_BYTES = 64 * 1024;

/** Files of a model folder that change what it computes. */
export function modelFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => !f.startsWith(".") && /\.(json|safetensors|jinja|gguf|model)$/.test(f))
    .sort();
}

function hashFile(file: string, h: crypto.Hash): void {
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    h.update(`${path.basename(file)}:${size}\n`);
    const buf = Buffer.alloc(1 << 20);
    if (size <= FULL_HASH_BYTES) {
      let n: number;
      while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
      return;
    }
    // the safetensors header (names, dtypes, offsets) whole, then sampled blocks
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const headerEnd = Math.min(size, 8 + Math.min(Number(len.readBigUInt64LE(0)), 100 * 2 ** 20));
    for (let at = 0; at < headerEnd; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, headerEnd - at), at);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
      at += n;
    }
    for (let i = 0; i <= SAMPLES; i++) {
      const at = Math.floor(((size - SAMPLE_BYTES) * i) / SAMPLES);
      const n = fs.readSync(fd, buf, 0, SAMPLE_BYTES, at);
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** "sha256:<hex>" identifying the model folder's contents, or a GGUF file's (not its path). */
export function modelFingerprint(dir: string): string {
  const h = crypto.createHash("sha256");
  try {
    if (fs.statSync(dir).isFile()) hashFile(dir, h);
    else for (const f of modelFiles(dir)) hashFile(path.join(dir, f), h);
  } catch (e) {
    throw new CheckpointError(`${dir}: cannot read the model files to fingerprint them (${describeFsError(e)})`);
  }
  return "sha256:" + h.digest("hex");
}

/** sha256 of a file's bytes ("sha256:<hex>"), for the inputs a run folds into the model. */
export function fileSha256(file: string): string {
  const h = crypto.createHash("sha256");
  try {
    h.update(fs.readFileSync(file));
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read (${describeFsError(e)})`);
  }
  return "sha256:" + h.digest("hex");
}
