// LiveCodeBench's compressed test cases: base64 of zlib-compressed pickle of one JSON string.
// We read only the trivial pickle of a single str — protocol ≤ 5 opcodes PROTO, FRAME,
// SHORT_BINUNICODE / BINUNICODE / BINUNICODE8, the memo opcodes (MEMOIZE, BINPUT,
// LONG_BINPUT) and STOP — and refuse every other opcode. Nothing is ever executed.

import zlib from "node:zlib";

/** Why an encoded string could not be read, in words (the caller adds where it came from). */
export class PickleFormatError extends Error {}

const OP = {
  PROTO: 0x80,
  FRAME: 0x95,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE: 0x58, // 'X'
  BINUNICODE8: 0x8d,
  MEMOIZE: 0x94,
  BINPUT: 0x71, // 'q'
  LONG_BINPUT: 0x72, // 'r'
  STOP: 0x2e, // '.'
} as const;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The str a pickle holds, when the pickle is nothing but one str; PickleFormatError otherwise. */
export function unpickleString(bytes: Uint8Array): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  let text: string | null = null;
  const need = (n: number, what: string) => {
    if (pos + n > bytes.length) throw new PickleFormatError(`truncated pickle: ${what} needs ${n} bytes at offset ${pos}, ${bytes.length - pos} left`);
  };
  const length64 = (what: string) => {
    need(8, what);
    const n = view.getBigUint64(pos, true);
    pos += 8;
    if (n > BigInt(bytes.length)) throw new PickleFormatError(`${what} of ${n} bytes is longer than the pickle (${bytes.length} bytes)`);
    return Number(n);
  };
  const readString = (n: number) => {
    need(n, "a string");
    if (text !== null) throw new PickleFormatError("more than one string: not the pickle of a single str");
    try {
      text = utf8.decode(bytes.subarray(pos, pos + n));
    } catch {
      throw new PickleFormatError(`the string at offset ${pos} is not valid UTF-8`);
    }
    pos += n;
  };
  while (true) {
    need(1, "an opcode");
    const at = pos;
    const op = bytes[pos++];
    switch (op) {
      case OP.PROTO: {
        need(1, "PROTO");
        const version = bytes[pos++];
        if (at !== 0) throw new PickleFormatError(`PROTO at offset ${at}: only allowed first`);
        if (version > 5) throw new PickleFormatError(`pickle protocol ${version}: only protocols up to 5 are read`);
        break;
      }
      case OP.FRAME:
        length64("FRAME"); // a frame only groups the opcodes that follow
        break;
      case OP.SHORT_BINUNICODE:
        need(1, "SHORT_BINUNICODE");
        readString(bytes[pos++]);
        break;
      case OP.BINUNICODE: {
        need(4, "BINUNICODE");
        const n = view.getUint32(pos, true);
        pos += 4;
        readString(n);
        break;
      }
      case OP.BINUNICODE8:
        readString(length64("BINUNICODE8"));
        break;
      case OP.MEMOIZE:
        break;
      case OP.BINPUT:
        need(1, "BINPUT");
        pos += 1;
        break;
      case OP.LONG_BINPUT:
        need(4, "LONG_BINPUT");
        pos += 4;
        break;
      case OP.STOP:
        if (text === null) throw new PickleFormatError("STOP before any string: not the pickle of a str");
        if (pos !== bytes.length) throw new PickleFormatError(`${bytes.length - pos} bytes after STOP`);
        return text;
      default:
        throw new PickleFormatError(`opcode 0x${op.toString(16).padStart(2, "0")} at offset ${at} is not one of a single-str pickle's (refused: nothing but a str is read)`);
    }
  }
}

/** base64 → zlib inflate → trivial pickle → the str (LiveCodeBench's `private_test_cases` encoding). */
export function decodeCompressedString(encoded: string): string {
  const trimmed = encoded.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(trimmed) || trimmed.length % 4 !== 0) throw new PickleFormatError("not base64");
  let inflated: Buffer;
  try {
    inflated = zlib.inflateSync(Buffer.from(trimmed, "base64"));
  } catch (e) {
    throw new PickleFormatError(`not zlib data (${(e as Error).message})`);
  }
  return unpickleString(inflated);
}
