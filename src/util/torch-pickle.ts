// Read files written by `torch.save` (the zip format, torch ≥ 1.6) without Python or torch:
// a ZIP archive of `<archive>/data.pkl` (a pickle, protocol 2), `<archive>/data/<key>` (the raw
// little-endian bytes of each storage), `<archive>/byteorder` and `<archive>/version`. The
// pickle runs on the restricted machine of pickle.ts with the allow-list below: tensors
// (torch._utils._rebuild_tensor_v2 over float32/float16/bfloat16 storages), OrderedDict, and
// the three globals numpy needs to pickle a float64 scalar (what the original's allocation
// list holds). Any other global — posix.system, builtins.eval, … — is a RefusedGlobalError
// the moment its name is read.
//
// Verified against the layout torch.save writes as reproduced by test/fixtures/torch/
// make_fixtures.py (standard-library pickle with torch's persistent ids, zipfile ZIP_STORED,
// and a torch-like writer with 64-byte-aligned data and ZIP64 records); no real torch file was
// available where this was written.

import fs from "node:fs";
import { FileError, RefusedGlobalError } from "../errors.js";
import { f16Value } from "../tensor/dtype.js";
import { fileError } from "./fs-errors.js";
import { isPyGlobal, PyDict, pyTypeName, PyTuple, unpickle, type PyGlobal, type PyKey, type PyObject, type PyValue } from "./pickle.js";
import { ZipArchive } from "./zip-reader.js";

export type TorchFloatDtype = "float32" | "float16" | "bfloat16";

const ITEM_BYTES: Record<TorchFloatDtype, number> = { float32: 4, float16: 2, bfloat16: 2 };

/** A tensor from a torch.save file: its values widened to float32, in row-major order of `shape`. */
export class TorchTensor implements PyObject {
  readonly pyType = "torch.Tensor";
  constructor(
    readonly dtype: TorchFloatDtype,
    readonly shape: readonly number[],
    readonly data: Float32Array,
  ) {}
}

export interface TorchSaveFile {
  /** The object torch.save was given. */
  value: PyValue;
  /** The folder name inside the ZIP (torch: the file's stem, or "archive"). */
  archiveName: string;
  /** The `version` record (3 for torch.save since 1.6). */
  formatVersion: number;
  /** Storages the file holds (one per distinct tensor buffer). */
  storages: number;
}

/** Files larger than this are not calibration artifacts (a 70B model's max keys are ~100 KB). */
export const MAX_TORCH_FILE_BYTES = 256 * 2 ** 20;

/** The globals a pickle may name, each with the TypeScript that REDUCE runs for it (none for names only). */
export const ALLOWED_GLOBALS = [
  "torch._utils._rebuild_tensor_v2",
  "torch.FloatStorage", "torch.HalfStorage", "torch.BFloat16Storage",
  "torch.float32", "torch.float16", "torch.bfloat16",
  "collections.OrderedDict",
  "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype", "_codecs.encode",
] as const;

const STORAGE_DTYPES: Record<string, TorchFloatDtype> = {
  "torch.FloatStorage": "float32", "torch.HalfStorage": "float16", "torch.BFloat16Storage": "bfloat16",
  "torch.float32": "float32", "torch.float16": "float16", "torch.bfloat16": "bfloat16",
};

/** Read a torch.save file; FileError for anything unreadable, RefusedGlobalError for a global off the allow-list. */
export function readTorchSave(file: string): TorchSaveFile {
  let size: number;
  try {
    const st = fs.statSync(file);
    if (st.isDirectory()) throw new FileError(`${file}: is a folder, not a file`);
    size = st.size;
  } catch (e) {
    throw e instanceof FileError ? e : fileError(file, "read", e);
  }
  if (size > MAX_TORCH_FILE_BYTES) throw new FileError(`${file}: ${size} bytes, more than any calibration artifact (limit ${MAX_TORCH_FILE_BYTES}); not read`);
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw fileError(file, "read", e);
  }
  return parseTorchSave(bytes, file);
}

/** Does a file start like a torch.save archive (a ZIP local header)? */
export function looksLikeTorchZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

export function parseTorchSave(bytes: Uint8Array, where: string): TorchSaveFile {
  if (!looksLikeTorchZip(bytes)) {
    if (bytes[0] === 0x80) throw new FileError(`${where}: a torch.save file in the legacy (pre-1.6) format, which pm-kvq does not read; load and save it again with torch ≥ 1.6`);
    throw new FileError(`${where}: not a torch.save file (it does not start with a ZIP header)`);
  }
  const zip = new ZipArchive(bytes, where);
  const pickles = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pickles.length !== 1) {
    const torchScript = [...zip.entries.keys()].some((n) => /^[^/]+\/constants\.pkl$/.test(n));
    throw new FileError(`${where}: ${torchScript ? "a TorchScript archive, not torch.save data" : pickles.length ? "holds several <archive>/data.pkl records" : "a ZIP archive without <archive>/data.pkl — not written by torch.save"}`);
  }
  const prefix = pickles[0].slice(0, pickles[0].length - "data.pkl".length);
  const stray = [...zip.entries.keys()].find((n) => !n.startsWith(prefix));
  if (stray) throw new FileError(`${where}: entry "${stray}" lies outside the archive folder "${prefix}" (not written by torch.save)`);
  const textEntry = (name: string): string | null => (zip.entries.has(prefix + name) ? new TextDecoder().decode(zip.read(prefix + name)).trim() : null);
  const byteorder = textEntry("byteorder");
  if (byteorder !== null && byteorder !== "little") {
    throw new FileError(`${where}: byteorder record says ${JSON.stringify(byteorder.slice(0, 20))}; pm-kvq reads little-endian torch files only`);
  }
  const versionText = textEntry("version") ?? textEntry(".data/version");
  if (versionText === null) throw new FileError(`${where}: no ${prefix}version record (not written by torch.save, or damaged)`);
  if (!/^[1-9][0-9]{0,5}$/.test(versionText)) throw new FileError(`${where}: version record ${JSON.stringify(versionText.slice(0, 20))} is not a format version`);

  const storages = new Map<string, StorageRef>();
  const value = unpickle(zip.read(prefix + "data.pkl"), {
    where: `${where} (${prefix}data.pkl)`,
    findGlobal: (module, name) => findGlobal(module, name, where),
    persistentLoad: (pid) => persistentLoad(pid, storages, zip, prefix, where),
  });
  return { value, archiveName: prefix.slice(0, -1), formatVersion: Number(versionText), storages: storages.size };
}

/** The storage a persistent id names: its bytes are read (and their count checked) when a tensor uses it. */
class StorageRef implements PyObject {
  readonly pyType = "torch.storage";
  private values: Float32Array | null = null;
  constructor(
    readonly dtype: TorchFloatDtype,
    readonly key: string,
    readonly numel: number,
    private readonly load: () => Uint8Array,
  ) {}

  /** Every element widened to float32. */
  floats(where: string): Float32Array {
    if (this.values) return this.values;
    const raw = this.load();
    const want = this.numel * ITEM_BYTES[this.dtype];
    if (raw.length !== want) throw new FileError(`${where}: storage data/${this.key} holds ${raw.length} bytes, but the pickle says ${this.numel} × ${this.dtype} = ${want}`);
    this.values = widen(raw, this.dtype, this.numel);
    return this.values;
  }
}

function widen(raw: Uint8Array, dtype: TorchFloatDtype, n: number): Float32Array {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float32Array(n);
  if (dtype === "float32") {
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  } else if (dtype === "float16") {
    for (let i = 0; i < n; i++) out[i] = f16Value(dv.getUint16(2 * i, true));
  } else {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true) << 16; // a bf16 is the top half of an f32
  }
  return out;
}

function refuse(qualname: string, where: string, why: string): never {
  throw new RefusedGlobalError(`${where}: refused global ${qualname}: ${why}; nothing was run (allowed: ${ALLOWED_GLOBALS.join(", ")})`, qualname);
}

function findGlobal(module: string, name: string, where: string): PyGlobal {
  const qualname = `${module}.${name}`;
  const named = (call?: (args: readonly PyValue[]) => PyValue): PyGlobal => ({ pyType: "global", qualname, ...(call ? { call } : {}) });
  if (qualname in STORAGE_DTYPES) return named();
  switch (qualname) {
    case "torch._utils._rebuild_tensor_v2":
      return named((args) => rebuildTensor(args, where));
    case "collections.OrderedDict":
      return named((args) => orderedDict(args, where));
    case "numpy.dtype":
      return named((args) => numpyDtype(args, where));
    case "numpy.core.multiarray.scalar":
    case "numpy._core.multiarray.scalar":
      return named((args) => numpyScalar(args, where));
    case "_codecs.encode":
      return named((args) => latin1Bytes(args, where));
  }
  if (/Storage$/.test(name) && module === "torch") refuse(qualname, where, "pm-kvq reads tensors of float32, float16 and bfloat16 only");
  return refuse(qualname, where, "not on pm-kvq's allow-list of torch.save data");
}

function bad(where: string, what: string, got: PyValue | undefined): never {
  throw new FileError(`${where}: ${what} (got ${pyTypeName(got)})`);
}

const isCount = (v: PyValue | undefined): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** ('storage', storage_type, key, location, numel) → the storage `<archive>/data/<key>`. */
function persistentLoad(pid: PyValue, storages: Map<string, StorageRef>, zip: ZipArchive, prefix: string, where: string): StorageRef {
  if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== "storage") bad(where, "a persistent id that is not ('storage', type, key, location, numel)", pid);
  const [, type, key, location, numel] = pid.items;
  if (!isPyGlobal(type) || !(type.qualname in STORAGE_DTYPES)) bad(where, "a storage whose type is not a float storage", type);
  if (typeof key !== "string" || !/^[0-9A-Za-z_.-]{1,64}$/.test(key)) bad(where, "a storage key that is not a short name", key);
  if (typeof location !== "string") bad(where, "a storage location that is not a string", location);
  if (!isCount(numel)) bad(where, "a storage size that is not a count", numel);
  const dtype = STORAGE_DTYPES[type.qualname];
  const known = storages.get(key);
  if (known) {
    if (known.dtype !== dtype || known.numel !== numel) throw new FileError(`${where}: storage ${key} is named twice with different types or sizes`);
    return known;
  }
  const name = `${prefix}data/${key}`;
  if (!zip.entries.has(name)) throw new FileError(`${where}: the pickle uses storage ${key}, but the archive has no ${name} (truncated or damaged)`);
  const ref = new StorageRef(dtype, key, numel, () => zip.read(name));
  storages.set(key, ref);
  return ref;
}

/** torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata]). */
function rebuildTensor(args: readonly PyValue[], where: string): TorchTensor {
  if (args.length !== 6 && args.length !== 7) throw new FileError(`${where}: _rebuild_tensor_v2 with ${args.length} arguments, expected 6 or 7`);
  const [storage, offset, size, stride, requiresGrad, hooks, metadata] = args;
  if (!(storage instanceof StorageRef)) bad(where, "a tensor whose storage is not a persistent storage", storage);
  if (!isCount(offset)) bad(where, "a tensor storage offset that is not a count", offset);
  const dims = (v: PyValue | undefined, what: string): number[] => {
    if (!(v instanceof PyTuple) || v.items.length > 64 || !v.items.every(isCount)) bad(where, `a tensor ${what} that is not a tuple of counts`, v);
    return v.items as number[];
  };
  const shape = dims(size, "size");
  const strides = dims(stride, "stride");
  if (strides.length !== shape.length) throw new FileError(`${where}: a tensor of ${shape.length} dimensions with ${strides.length} strides`);
  if (typeof requiresGrad !== "boolean") bad(where, "a tensor requires_grad that is not a bool", requiresGrad);
  if (!(hooks instanceof PyDict) || hooks.items.size) bad(where, "a tensor with backward hooks (expected an empty OrderedDict)", hooks);
  if (metadata !== undefined && !(metadata instanceof PyDict && metadata.items.size === 0)) bad(where, "a tensor with metadata pm-kvq does not interpret", metadata);
  // bounds before any allocation: the elements must lie inside the storage, and (no expanded views) number at most its size
  let numel = 1;
  let last = offset;
  for (let d = 0; d < shape.length; d++) {
    numel *= shape[d];
    last += (shape[d] - 1) * strides[d];
    if (numel > storage.numel) break;
  }
  if (numel > storage.numel) throw new FileError(`${where}: a tensor of shape [${shape.join(", ")}] has more elements than its storage of ${storage.numel}`);
  if (numel > 0 && last >= storage.numel) throw new FileError(`${where}: a tensor of shape [${shape.join(", ")}], stride (${strides.join(", ")}), offset ${offset} reads past its storage of ${storage.numel} elements`);
  const all = storage.floats(where);
  return new TorchTensor(storage.dtype, shape, gather(all, offset, shape, strides, numel));
}

/** The tensor's elements in row-major order of its shape, from any strides. */
function gather(src: Float32Array, offset: number, shape: number[], strides: number[], numel: number): Float32Array {
  const out = new Float32Array(numel);
  if (numel === 0) return out;
  let contiguous = true;
  for (let d = shape.length - 1, expect = 1; d >= 0; d--) {
    if (shape[d] !== 1 && strides[d] !== expect) contiguous = false; // a size-1 dimension's stride is never used
    expect *= shape[d];
  }
  if (contiguous) {
    out.set(src.subarray(offset, offset + numel));
    return out;
  }
  const index = new Array<number>(shape.length).fill(0);
  let at = offset;
  for (let i = 0; i < numel; i++) {
    out[i] = src[at];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) {
        at += strides[d];
        break;
      }
      at -= (shape[d] - 1) * strides[d];
      index[d] = 0;
    }
  }
  return out;
}

/** collections.OrderedDict() — or OrderedDict([(k, v), …]). */
function orderedDict(args: readonly PyValue[], where: string): PyDict {
  const d = new PyDict(true);
  if (args.length === 0) return d;
  const pairs = args[0];
  if (args.length !== 1 || !(Array.isArray(pairs) || pairs instanceof PyTuple)) bad(where, "OrderedDict(…) with arguments other than a list of pairs", pairs);
  for (const p of Array.isArray(pairs) ? pairs : pairs.items) {
    if (!(p instanceof PyTuple) || p.items.length !== 2) bad(where, "an OrderedDict item that is not a (key, value) pair", p);
    const k = p.items[0];
    if (!(k === null || ["string", "number", "bigint", "boolean"].includes(typeof k) || k instanceof PyTuple)) bad(where, "an OrderedDict key that is not hashable data", k);
    d.items.set(k as PyKey, p.items[1]);
  }
  return d;
}

const NUMPY_CODES: Record<string, { bytes: number; read: (dv: DataView, little: boolean) => number | bigint }> = {
  f8: { bytes: 8, read: (dv, le) => dv.getFloat64(0, le) },
  f4: { bytes: 4, read: (dv, le) => dv.getFloat32(0, le) },
  i8: { bytes: 8, read: (dv, le) => small(dv.getBigInt64(0, le)) },
  i4: { bytes: 4, read: (dv, le) => dv.getInt32(0, le) },
};

const small = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);

/** numpy.dtype(code, align, copy), its byte order set by BUILD with numpy's state tuple. */
class NumpyDtype implements PyObject {
  readonly pyType = "numpy.dtype";
  littleEndian = true;
  constructor(readonly code: string, private readonly where: string) {}

  setState(state: PyValue): void {
    const order = state instanceof PyTuple ? state.items[1] : undefined;
    if (order !== "<" && order !== ">" && order !== "=" && order !== "|") bad(this.where, "a numpy dtype state without a byte order", state);
    this.littleEndian = order !== ">";
  }
}

function numpyDtype(args: readonly PyValue[], where: string): NumpyDtype {
  const code = args[0];
  if (typeof code !== "string" || !(code in NUMPY_CODES)) bad(where, `a numpy dtype other than ${Object.keys(NUMPY_CODES).join(", ")}`, code);
  return new NumpyDtype(code, where);
}

/** numpy's scalar(dtype, bytes): one float64 (or f4, i8, i4) as a number. */
function numpyScalar(args: readonly PyValue[], where: string): number | bigint {
  const [dtype, raw] = args;
  if (!(dtype instanceof NumpyDtype)) bad(where, "a numpy scalar without a numpy dtype", dtype);
  if (!(raw instanceof Uint8Array)) bad(where, "a numpy scalar without its bytes", raw);
  const c = NUMPY_CODES[dtype.code];
  if (raw.length !== c.bytes) throw new FileError(`${where}: a numpy ${dtype.code} scalar of ${raw.length} bytes, expected ${c.bytes}`);
  return c.read(new DataView(raw.buffer, raw.byteOffset, raw.byteLength), dtype.littleEndian);
}

/** _codecs.encode(text, 'latin1'): how protocol 2 pickles bytes. */
function latin1Bytes(args: readonly PyValue[], where: string): Uint8Array {
  const [text, encoding] = args;
  if (typeof text !== "string" || (encoding !== "latin1" && encoding !== "latin-1")) bad(where, "_codecs.encode with other arguments than (str, 'latin1')", encoding);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw new FileError(`${where}: _codecs.encode(…, 'latin1') of a character beyond latin-1`);
    out[i] = c;
  }
  return out;
}
