// config.json parsing: defaults, GQA/head_dim rules, both places rope settings live.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../../src/errors.js";
import { parseModelConfig } from "../../src/model/config.js";
import { ropeInvFreq } from "../../src/model/rope.js";

const base = {
  architectures: ["LlamaForCausalLM"], hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 100,
};

test("defaults: head_dim = hidden / heads, theta 10000, no scaling, no biases", () => {
  const c = parseModelConfig(base);
  assert.equal(c.headDim, 16);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.ropeScaling.type, "default");
  assert.equal(c.qkvBias, false);
  assert.equal(c.tieWordEmbeddings, false);
});

test("Qwen2 has q/k/v biases; eos ids may be a list", () => {
  const c = parseModelConfig({ ...base, architectures: ["Qwen2ForCausalLM"], eos_token_id: [5, 7] });
  assert.equal(c.qkvBias, true);
  assert.equal(c.oBias, false);
  assert.deepEqual(c.eosTokenIds, [5, 7]);
});

test("transformers ≥ 5 rope_parameters are read like rope_theta + rope_scaling", () => {
  const rope = { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
  const old = parseModelConfig({ ...base, rope_theta: 500000, rope_scaling: rope });
  const neu = parseModelConfig({ ...base, rope_parameters: { ...rope, rope_theta: 500000 } });
  assert.equal(neu.ropeTheta, 500000);
  assert.deepEqual(neu.ropeScaling, old.ropeScaling);
  assert.deepEqual(ropeInvFreq(neu), ropeInvFreq(old));
  assert.equal(parseModelConfig({ ...base, rope_parameters: { rope_type: "default", rope_theta: 1e6 } }).ropeTheta, 1e6);
});

test("llama3 inverse frequencies: high kept, low divided by factor, middle blended", () => {
  const c = parseModelConfig({ ...base, rope_theta: 10000, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } });
  const inv = ropeInvFreq(c);
  for (let i = 0; i < inv.length; i++) {
    const plain = 1 / Math.pow(10000, (2 * i) / 16);
    const wavelen = (2 * Math.PI) / plain;
    if (wavelen < 16) assert.equal(inv[i], plain);
    else if (wavelen > 64) assert.ok(Math.abs(inv[i] - plain / 8) < 1e-15);
    else assert.ok(inv[i] < plain && inv[i] > plain / 8);
  }
});

test("invalid configs give ConfigError with the field and the valid choices", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...base, architectures: ["GPT2LMHeadModel"] }, /supported: LlamaForCausalLM, Qwen2ForCausalLM/],
    [{ ...base, num_key_value_heads: 3 }, /multiple of num_key_value_heads/],
    [{ ...base, hidden_size: "64" }, /"hidden_size" must be a number/],
    [{ ...base, head_dim: 7 }, /head_dim 7 must be even/],
    [{ ...base, hidden_act: "gelu" }, /hidden_act "gelu".*supported: silu/],
    [{ ...base, rope_scaling: { rope_type: "dynamic", factor: 2 } }, /supported: default, linear, llama3/],
    [{ ...base, rope_scaling: { rope_type: "llama3", factor: 8 } }, /low_freq_factor/],
    [{ ...base, architectures: ["Qwen2ForCausalLM"], use_sliding_window: true }, /use_sliding_window/],
  ];
  for (const [cfg, msg] of cases) assert.throws(() => parseModelConfig(cfg), (e: Error) => e instanceof ConfigError && msg.test(e.message), String(msg));
});
