// A GGUF tensor as a weight Matrix, read straight into the kernel arena in its stored type (float
// values, or ggml blocks kept quantized): one read, no copy. For GGUF model loading.

import { CheckpointError } from "../errors.js";
import { ggmlTraitsById, quantDtypeOfGgmlType } from "../tensor/ggml-quant.js";
import type { Matrix } from "../tensor/matrix.js";
import { allocF32, allocU16, allocU8, release } from "../tensor/memory.js";
import { GGML_TYPE, ggufTensorBytes, readGgufTensorData, type GgufFile, type GgufTensorInfo } from "./gguf.js";

/**
 * The 2-D tensor t (ggml dims [cols, rows]) of the GGUF file g, open as fd, as a Matrix of its
 * stored type: F32 → f32, F16 → f16, BF16 → bf16, Q8_0/Q4_0/Q4_K/Q6_K → blocks. `file` names the
 * file in errors.
 */
export function readGgufMatrix(fd: number, g: GgufFile, t: GgufTensorInfo, file = "GGUF file"): Matrix {
  const where = `${file}: tensor "${t.name}"`;
  if (t.dims.length !== 2) throw new CheckpointError(`${where} has dims ${JSON.stringify(t.dims)}, expected a matrix [cols, rows]`);
  const [cols, rows] = t.dims;
  const bytes = ggufTensorBytes(t);
  const traits = ggmlTraitsById(t.type);
  if (bytes === null || !traits || Number.isNaN(bytes)) {
    throw new CheckpointError(`${where}: ggml type ${t.type} with dims ${JSON.stringify(t.dims)} is not a matrix type this engine runs (F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q6_K)`);
  }
  const quant = quantDtypeOfGgmlType(t.type);
  let m: Matrix;
  if (quant) m = { dtype: quant, rows, cols, data: allocU8(bytes) };
  else if (t.type === GGML_TYPE.F32) m = { dtype: "f32", rows, cols, data: allocF32(rows * cols) };
  else m = { dtype: t.type === GGML_TYPE.F16 ? "f16" : "bf16", rows, cols, data: allocU16(rows * cols) };
  try {
    readGgufTensorData(fd, g, t, file, new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength));
  } catch (e) {
    release(m.data);
    throw e;
  }
  return m;
}
