// The tiled-attention call's memory layout, defined once for both sides: the host writes a plan
// and segment tables (src/tensor/kernels.ts, attendTiledKernel) and the kernel reads them
// (src/tensor/assembly/attention.ts). tsc compiles this file and AssemblyScript imports it as it
// is, so it holds only integer constants with no type annotations (AssemblyScript then infers
// i32; `: number` would mean f64 there).

// ---- plan: one call, i32 fields (PLAN_SCALE holds an f32), PLAN_INTS of them
/** Output rows (T, heads·d), f32. */
export const PLAN_OUT = 0;
/** Query rows (T, heads·d), f32. */
export const PLAN_Q = 1;
/** Queries in this call. */
export const PLAN_T = 2;
/** Tokens held (the queries are the last T of them). */
export const PLAN_L = 3;
export const PLAN_HEADS = 4;
export const PLAN_KV_HEADS = 5;
/** Head dimension. */
export const PLAN_D = 6;
/** Quantization group size. */
export const PLAN_G = 7;
/** The key segment table (MAX_SEGMENTS entries of SEG_INTS i32). */
export const PLAN_SEG_K = 8;
/** The value segment table, entry s pairs with key entry s. */
export const PLAN_SEG_V = 9;
/** Segments in use, in token order. */
export const PLAN_SEGMENTS = 10;
/** Queries as int16, one copy per code width in use (1, 2, 4, 8 bits), each in its tile permutation. */
export const PLAN_QINT = 11;
/** Bytes from one width's int16 queries to the next's. */
export const PLAN_QINT_STRIDE = 12;
/** int16 query scale per (query, head, group), f32. */
export const PLAN_QS = 13;
/** Σq per (query, head, group), f32. */
export const PLAN_SUM_Q = 14;
/** Tile index → channel, 4 × d i32 (one permutation per code width). */
export const PLAN_PERM = 15;
/** MODE_DECODE or MODE_PREFILL. */
export const PLAN_MODE = 16;
/** Decode: the query this step attends for. */
export const PLAN_QUERY = 17;
/** Per-thread scratch: thread i at scratch + i·stride. */
export const PLAN_SCRATCH = 18;
export const PLAN_SCRATCH_STRIDE = 19;
/** Decode: per-thread partial states (m, l, acc[d]) per query head. */
export const PLAN_PARTIALS = 20;
export const PLAN_PARTIAL_STRIDE = 21;
/** 1/√d, as f32 bits. */
export const PLAN_SCALE = 22;
/** i32 fields a plan takes (one spare). */
export const PLAN_INTS = 24;

// ---- modes (PLAN_MODE)
/** One query: its keys split over the threads, which write partial states for the host to merge. */
export const MODE_DECODE = 0;
/** Many queries: query blocks dealt to the threads, which write the outputs. */
export const MODE_PREFILL = 1;

// ---- segment: a run of tokens in one storage format, i32 fields, SEG_INTS of them
/** Storage kind: SEG_F32, SEG_F16, SEG_PACKED or SEG_PACKED16. */
export const SEG_KIND = 0;
/** f32 rows, f16 rows, or packed code words. */
export const SEG_DATA = 1;
/** f16 scale per group (packed kinds; else 0). */
export const SEG_SCALES = 2;
/** f16 zero per group (packed kinds; else 0). */
export const SEG_ZEROS = 3;
/** Tokens in the segment. */
export const SEG_LENGTH = 4;
/** Bits per code (packed kinds), 32 or 16 for float rows. */
export const SEG_BITS = 5;
/** Row stride: elements (float kinds) or 32-bit words (packed kinds). */
export const SEG_ROW_STRIDE = 6;
/** Scale/zero pairs per row (packed kinds). */
export const SEG_GROUPS_PER_ROW = 7;
/** i32 fields a segment takes. */
export const SEG_INTS = 8;
/** Segments a table holds (key and value tables alike). */
export const MAX_SEGMENTS = 8;

// ---- storage kinds (SEG_KIND)
/** f32 rows (full-precision cache). */
export const SEG_F32 = 0;
/** f16 rows (full-precision cache in half precision). */
export const SEG_F16 = 1;
/** Packed codes of 1, 2, 4 or 8 bits, f16 scale and zero per group: the integer path. */
export const SEG_PACKED = 2;
/** Packed 16-bit codes, f16 scale and zero per group: the same factoring in float32. */
export const SEG_PACKED16 = 3;
