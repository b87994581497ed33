// --kv-trace: one JSON line per step with each block's body bits and bytes, written to a
// temp file and renamed into place when the run ends (never half-written).

import fs from "node:fs";
import path from "node:path";
import type { KvCache } from "../model/kv-cache.js";

export interface KvTraceLine {
  step: number;
  tokens: number;
  blocks: { bodyBits: number; bodyTokens: number; codeBytes: number; heldBytes: number }[];
  totalCodeBytes: number;
  totalHeldBytes: number;
}

export class KvTraceWriter {
  private readonly tmp: string;
  private fd: number;

  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    this.tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.tmp`);
    this.fd = fs.openSync(this.tmp, "w");
  }

  record(step: number, cache: KvCache): void {
    const st = cache.stats();
    const line: KvTraceLine = {
      step,
      tokens: cache.length,
      blocks: st.blocks.map((b) => ({ bodyBits: b.bodyBits, bodyTokens: b.bodyTokens, codeBytes: b.codeBytes, heldBytes: b.heldBytes })),
      totalCodeBytes: st.totalCodeBytes,
      totalHeldBytes: st.totalHeldBytes,
    };
    fs.writeSync(this.fd, JSON.stringify(line) + "\n");
  }

  /** Close and move the trace into place. */
  finish(): void {
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
    fs.renameSync(this.tmp, this.file);
  }

  /** Close and delete the partial trace (the run failed). */
  abort(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    fs.rmSync(this.tmp, { force: true });
  }
}
