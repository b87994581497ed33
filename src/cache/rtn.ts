// RTN baseline (spec §7): K (after RoPE) and V of every token fake-quantized per group at
// k/v bits before attention — direct quantization, no progression.

import { fakeQuantize } from "../quant/quantizer.js";
import { attendFloat } from "./attention.js";
import { KvCache, type KvBlockStats, type KvShape, type LayerKvCache } from "./types.js";

export interface RtnOptions {
  kBits: number;
  vBits: number;
  groupSize: number;
}

export class RtnLayerCache implements LayerKvCache {
  private keys = new Float32Array(0); // (capacity, kvHeads·d) dequantized
  private values = new Float32Array(0);
  private scores = new Float32Array(0);
  private tokens = 0;
  private readonly rowElems: number;

  constructor(readonly shape: KvShape, readonly opts: RtnOptions) {
    this.rowElems = shape.numKvHeads * shape.headDim;
  }

  get length(): number {
    return this.tokens;
  }

  append(keys: Float32Array, values: Float32Array, n: number): void {
    const need = (this.tokens + n) * this.rowElems;
    if (need > this.keys.length) {
      const cap = Math.ceil((this.tokens + n) / 256) * 256;
      const k = new Float32Array(cap * this.rowElems);
      const v = new Float32Array(cap * this.rowElems);
      k.set(this.keys.subarray(0, this.tokens * this.rowElems));
      v.set(this.values.subarray(0, this.tokens * this.rowElems));
      this.keys = k;
      this.values = v;
      this.scores = new Float32Array(cap);
    }
    const at = this.tokens * this.rowElems;
    const len = n * this.rowElems;
    this.keys.set(keys.subarray(0, len), at);
    this.values.set(values.subarray(0, len), at);
    fakeQuantize(this.keys, at, len, this.opts.groupSize, this.opts.kBits);
    fakeQuantize(this.values, at, len, this.opts.groupSize, this.opts.vBits);
    this.tokens += n;
  }

  attend(queries: Float32Array, nTokens: number, out: Float32Array): void {
    attendFloat(out, queries, nTokens, this.keys, this.values, this.tokens, this.shape, this.scores);
  }

  stats(): KvBlockStats {
    const { kBits, vBits } = this.opts;
    return {
      bodyBits: kBits === vBits ? kBits : (kBits + vBits) / 2,
      sinkTokens: 0,
      bodyTokens: this.tokens,
      windowTokens: 0,
      codeBytes: (this.tokens * this.rowElems * (kBits + vBits)) / 8,
      // simulated: the floats actually held (a packed store would need codes + 2 × 4 bytes per group)
      heldBytes: this.keys.byteLength + this.values.byteLength,
      budgetBytes: null,
    };
  }

  reset(): void {
    this.tokens = 0;
    this.keys = new Float32Array(0);
    this.values = new Float32Array(0);
  }
}

export function createRtnCache(shape: KvShape, numLayers: number, opts: RtnOptions): KvCache {
  return new KvCache(`rtn-k${opts.kBits}v${opts.vBits}`, Array.from({ length: numLayers }, () => new RtnLayerCache(shape, opts)));
}
