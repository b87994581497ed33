// Model folders that cannot be right are refused with a message naming the file: config and
// weights that disagree on the number of blocks, null JSON files, a checkpoint too large for
// the WebAssembly memories (refused before a byte of weights is read); tensors the model does not
// use are a warning.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { CheckpointError, OutOfMemoryError } from "../../src/errors.js";
import { loadModel } from "../../src/model/checkpoint.js";
import { encodeSafetensors, readSafetensorsHeader } from "../../src/model/safetensors.js";
import { arenaBytesInUse } from "../../src/tensor/memory.js";
import { STORIES_DIR, tempDir } from "../helpers.js";

/** A copy of stories260K whose files can be edited. */
function storiesCopy(): string {
  const dir = tempDir("pmkvq-ckpt-");
  for (const f of fs.readdirSync(STORIES_DIR)) {
    if (fs.statSync(path.join(STORIES_DIR, f)).isFile()) fs.copyFileSync(path.join(STORIES_DIR, f), path.join(dir, f));
  }
  return dir;
}

function editJson(file: string, fn: (j: Record<string, unknown>) => void): void {
  const j = JSON.parse(fs.readFileSync(file, "utf8"));
  fn(j);
  fs.writeFileSync(file, JSON.stringify(j));
}

test("a config with fewer blocks than the checkpoint holds is refused (not silently truncated)", () => {
  const dir = storiesCopy();
  editJson(path.join(dir, "config.json"), (j) => (j.num_hidden_layers = 3));
  assert.throws(() => loadModel(dir), (e: unknown) => {
    assert.ok(e instanceof CheckpointError);
    assert.match(e.message, /model\.safetensors: holds tensor "model\.layers\.3\.[^"]+" of block 3, but config\.json num_hidden_layers is 3/);
    return true;
  });
});

test("tensors the model does not read are reported as one warning line", () => {
  const dir = storiesCopy();
  const file = path.join(dir, "model.safetensors");
  const h = readSafetensorsHeader(file);
  const raw = fs.readFileSync(file);
  const tensors = [...h.tensors.values()].sort((a, b) => a.begin - b.begin).map((t) => ({
    name: t.name, dtype: t.dtype as "F32", shape: t.shape, data: new Float32Array(raw.buffer.slice(raw.byteOffset + t.begin, raw.byteOffset + t.end)),
  }));
  tensors.push({ name: "model.extra_projection.weight", dtype: "F32", shape: [2, 2], data: new Float32Array(4) });
  tensors.push({ name: "model.layers.0.self_attn.rotary_emb.inv_freq", dtype: "F32", shape: [4], data: new Float32Array(4) });
  fs.writeFileSync(file, encodeSafetensors(tensors));
  const m = loadModel(dir);
  assert.deepEqual(m.warnings, [`${dir}: 1 tensor not used by LlamaForCausalLM: model.extra_projection.weight`]);
  m.dispose();
});

test("JSON files that are null or not objects are refused naming the file", () => {
  for (const [file, want] of [
    ["generation_config.json", /generation_config\.json: not a JSON object/],
    ["config.json", /config\.json: not a JSON object/],
  ] as const) {
    const dir = storiesCopy();
    fs.writeFileSync(path.join(dir, file), "null");
    assert.throws(() => loadModel(dir), want);
  }
  const dir = storiesCopy();
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), "null");
  assert.throws(() => loadModel(dir), /model\.safetensors\.index\.json: not a JSON object/);
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: null }));
  assert.throws(() => loadModel(dir), /no "weight_map" object/);
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: { "model.norm.weight": ".." } }));
  assert.throws(() => loadModel(dir), /maps to an invalid shard name/);
});

test("generation_config.json's top_k is read; a bad one is refused naming the file", () => {
  const dir = storiesCopy();
  const file = path.join(dir, "generation_config.json");
  const base = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : {};
  fs.writeFileSync(file, JSON.stringify({ ...base, top_k: 20 }));
  using m = loadModel(dir);
  assert.equal(m.generation.topK, 20);
  for (const bad of [-1, 2.5, "50"]) {
    fs.writeFileSync(file, JSON.stringify({ ...base, top_k: bad }));
    assert.throws(() => loadModel(dir), /generation_config\.json: "top_k" must be an integer ≥ 0/);
  }
});

/** A sparse Llama checkpoint (bf16, no data on disk) of the given shape: headers only, reads would be zeros. */
function sparseCheckpoint(o: { hidden: number; inter: number; layers: number; vocab: number }): string {
  const dir = tempDir("pmkvq-huge-");
  const { hidden: h, inter, layers, vocab } = o;
  const c = { architectures: ["LlamaForCausalLM"], hidden_size: h, intermediate_size: inter, num_hidden_layers: layers, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: vocab, max_position_embeddings: 4096, rms_norm_eps: 1e-5, torch_dtype: "bfloat16" };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(c));
  const n = (shape: number[]) => shape.reduce((a, d) => a * d, 1);
  const kv = (h / 32) * 8;
  const names: [string, number[]][] = [["model.embed_tokens.weight", [vocab, h]]];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    names.push(
      [p + "input_layernorm.weight", [h]], [p + "self_attn.q_proj.weight", [h, h]], [p + "self_attn.k_proj.weight", [kv, h]], [p + "self_attn.v_proj.weight", [kv, h]],
      [p + "self_attn.o_proj.weight", [h, h]], [p + "post_attention_layernorm.weight", [h]], [p + "mlp.gate_proj.weight", [inter, h]], [p + "mlp.up_proj.weight", [inter, h]],
      [p + "mlp.down_proj.weight", [h, inter]],
    );
  }
  names.push(["model.norm.weight", [h]], ["lm_head.weight", [vocab, h]]);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of names) {
    header[name] = { dtype: "BF16", shape, data_offsets: [offset, offset + 2 * n(shape)] };
    offset += 2 * n(shape);
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const file = path.join(dir, "model.safetensors");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json)]));
  fs.truncateSync(file, 8 + json.length + offset); // sparse: gigabytes that take no disk
  return dir;
}

test("a tensor larger than one WebAssembly memory is refused before any weight is read, saying the sizes", () => {
  // 600000 × 4096 bf16: the embedding alone is 4.6 GiB, more than a 32-bit memory holds
  const dir = sparseCheckpoint({ hidden: 4096, inter: 11008, layers: 1, vocab: 600000 });
  const before = arenaBytesInUse();
  const t0 = performance.now();
  assert.throws(() => loadModel(dir), (e: unknown) => {
    assert.ok(e instanceof OutOfMemoryError, String(e));
    assert.match(e.message, /\(5\.\d\dB parameters held as bf16\)/);
    assert.match(e.message, /the embedding needs 4\.58 GiB, more than one WebAssembly memory holds \(\d\.\d\d GiB usable of 4\.00 GiB\)/);
    return true;
  });
  assert.ok(performance.now() - t0 < 2000, "refused without reading the weights");
  assert.equal(arenaBytesInUse(), before);
});

test("a model past this machine's memory is refused before any weight is read, with weights + KV cache vs what is there", () => {
  // 400 blocks of 8192 × 28672: about 1.4 TB in bf16, past any machine this runs on
  const dir = sparseCheckpoint({ hidden: 8192, inter: 28672, layers: 400, vocab: 32000 });
  const before = arenaBytesInUse();
  const t0 = performance.now();
  assert.throws(() => loadModel(dir, { kvTokens: 256 }), (e: unknown) => {
    assert.ok(e instanceof OutOfMemoryError, String(e));
    // KV per block: 256 tokens (one growth step) × (K + V) × 2048 floats × 4 bytes = 4 MiB; × 400 = 1.56 GiB
    assert.match(e.message, /weights \d+\.\d\d GiB \+ KV cache 1\.56 GiB \(for 256 tokens\) \+ forward scratch [\d.]+ [GM]iB = \d+\.\d\d GiB, but this process can hold \d+\.\d\d GiB in WebAssembly memories/);
    return true;
  });
  assert.ok(performance.now() - t0 < 3000, "refused without reading the weights");
  assert.equal(arenaBytesInUse(), before);
});
