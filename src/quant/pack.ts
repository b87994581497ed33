// Dense bit packing: codes of b ∈ {1, 2, 4, 8, 16} bits, 32/b per 32-bit word, code i of a
// row in word ⌊i / (32/b)⌋ at bit (i mod (32/b))·b (the first code in the low bits).

export function codesPerWord(bits: number): number {
  return 32 / bits;
}

/** Words needed for n codes of `bits` bits. */
export function wordsFor(n: number, bits: number): number {
  return Math.ceil((n * bits) / 32);
}

/** Pack n codes (each < 2^bits) into words starting at out[outOff]. */
export function packCodes(codes: ArrayLike<number>, codesOff: number, n: number, bits: number, out: Uint32Array, outOff: number): void {
  const per = 32 / bits;
  const words = wordsFor(n, bits);
  for (let w = 0; w < words; w++) {
    let word = 0;
    const base = codesOff + w * per;
    const count = Math.min(per, n - w * per);
    for (let k = 0; k < count; k++) word |= codes[base + k] << (k * bits);
    out[outOff + w] = word >>> 0;
  }
}

/** Unpack n codes from words at packed[packedOff] into out[outOff …]. */
export function unpackCodes(packed: Uint32Array, packedOff: number, n: number, bits: number, out: Uint16Array | Uint8Array | number[], outOff: number): void {
  const per = 32 / bits;
  const mask = bits === 32 ? 0xffffffff : (1 << bits) - 1;
  for (let i = 0; i < n; i++) {
    const word = packed[packedOff + Math.floor(i / per)];
    out[outOff + i] = (word >>> ((i % per) * bits)) & mask;
  }
}
