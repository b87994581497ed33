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

// Qwen3-0.6B's config.json (the fields the engine reads): head_dim 128 with hidden 1024 and 16 heads.
test("Qwen3: explicit head_dim ≠ hidden / heads, q/k norms, biases only with attention_bias (then on q, k, v and o)", () => {
  const qwen3 = {
    architectures: ["Qwen3ForCausalLM"], attention_bias: false, head_dim: 128, hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28,
    num_attention_heads: 16, num_key_value_heads: 8, vocab_size: 151936, rms_norm_eps: 1e-6, rope_theta: 1000000, rope_scaling: null,
    sliding_window: null, use_sliding_window: false, max_window_layers: 28, tie_word_embeddings: true, eos_token_id: 151645, torch_dtype: "bfloat16",
  };
  const c = parseModelConfig(qwen3);
  assert.equal(c.architecture, "Qwen3ForCausalLM");
  assert.equal(c.headDim, 128);
  assert.equal(c.numHeads * c.headDim, 2048);
  assert.equal(c.qkNorm, true);
  assert.equal(c.qkvBias, false);
  assert.equal(c.oBias, false);
  assert.equal(c.tieWordEmbeddings, true);
  const biased = parseModelConfig({ ...qwen3, attention_bias: true });
  assert.equal(biased.qkvBias, true);
  assert.equal(biased.oBias, true);
  assert.equal(parseModelConfig(base).qkNorm, false);
  assert.equal(parseModelConfig({ ...base, architectures: ["Qwen2ForCausalLM"] }).qkNorm, false);
  assert.throws(() => parseModelConfig({ ...qwen3, use_sliding_window: true }), (e: Error) => e instanceof ConfigError && /use_sliding_window/.test(e.message));
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
    [{ ...base, architectures: ["GPT2LMHeadModel"] }, /supported: LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM/],
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

// Values that parse as numbers but would break the math: each refused, naming the file and key.
test("out-of-range values give ConfigError naming the file, the key and what is valid", () => {
  const llama3 = { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
  const cases: [Record<string, unknown>, string[]][] = [
    [{ ...base, rms_norm_eps: 0 }, ['"rms_norm_eps" must be a number > 0', "got 0"]],
    [{ ...base, rms_norm_eps: -1e-6 }, ['"rms_norm_eps" must be a number > 0']],
    [{ ...base, rms_norm_eps: Infinity }, ['"rms_norm_eps" must be a number']],
    [{ ...base, rope_theta: 0 }, ['"rope_theta" must be a number > 0']],
    [{ ...base, rope_theta: -10000 }, ['"rope_theta" must be a number > 0']],
    [{ ...base, rope_parameters: { rope_type: "default", rope_theta: Infinity } }, ['"rope_theta" must be a number']],
    [{ ...base, rope_scaling: { rope_type: "linear", factor: 0 } }, ["rope_scaling", '"factor" must be a number > 0']],
    [{ ...base, rope_scaling: { rope_type: "linear", factor: -2 } }, ['"factor" must be a number > 0']],
    [{ ...base, rope_scaling: { rope_type: "linear", factor: Infinity } }, ['"factor" must be a number']],
    [{ ...base, rope_scaling: { ...llama3, factor: 0 } }, ['"factor" must be a number > 0']],
    [{ ...base, rope_scaling: { ...llama3, low_freq_factor: 0 } }, ['"low_freq_factor" must be a number > 0']],
    [{ ...base, rope_scaling: { ...llama3, high_freq_factor: 1 } }, ['"high_freq_factor" must be a number > 1', "exceed low_freq_factor"]],
    [{ ...base, rope_scaling: { ...llama3, high_freq_factor: 0.5 } }, ['"high_freq_factor" must be a number > 1']],
    [{ ...base, rope_scaling: { ...llama3, original_max_position_embeddings: 0 } }, ['"original_max_position_embeddings" must be a positive integer']],
    [{ ...base, rope_scaling: { ...llama3, original_max_position_embeddings: 8.5 } }, ['"original_max_position_embeddings" must be a positive integer']],
    [{ ...base, rope_scaling: { ...llama3, original_max_position_embeddings: null } }, ['"original_max_position_embeddings" must be a number']],
    [{ ...base, rope_scaling: [] }, ["rope_scaling must be an object or null"]],
    [{ ...base, rope_parameters: 5 }, ['"rope_parameters" must be an object or null']],
    [{ ...base, architectures: "LlamaForCausalLM" }, ['"architectures" must be a list', '["LlamaForCausalLM"]', 'got "LlamaForCausalLM"']],
    [{ ...base, architectures: null }, ['"architectures" must be a list']],
    [{ ...base, architectures: { LlamaForCausalLM: true } }, ['"architectures" must be a list']],
    [{ ...base, hidden_size: 2 ** 60 }, ['"hidden_size" must be a positive integer']],
    [{ ...base, vocab_size: 1e300 }, ['"vocab_size" must be a positive integer']],
    [{ ...base, hidden_size: JSON.parse("[".repeat(1e5) + "]".repeat(1e5)) }, ['"hidden_size" must be a number (got a list nested too deep to show)']],
  ];
  for (const [i, [cfg, parts]] of cases.entries()) {
    assert.throws(() => parseModelConfig(cfg, "/m/config.json"), (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
      for (const part of ["/m/config.json", ...parts]) assert.ok(e.message.includes(part), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(part)}`);
      return true;
    }, `case ${i}: ${parts[0]}`);
  }
});

test("null means absent wherever a default exists", () => {
  const nulls = {
    num_key_value_heads: null, head_dim: null, hidden_act: null, max_position_embeddings: null, rms_norm_eps: null,
    rope_theta: null, rope_scaling: null, rope_parameters: null, tie_word_embeddings: null, attention_bias: null,
    mlp_bias: null, bos_token_id: null, eos_token_id: null, torch_dtype: null,
  };
  const withoutKv = { ...base } as Record<string, unknown>;
  delete withoutKv.num_key_value_heads;
  assert.deepEqual(parseModelConfig({ ...base, ...nulls }), parseModelConfig(withoutKv));
  const c = parseModelConfig({ ...base, ...nulls });
  assert.deepEqual([c.numKvHeads, c.headDim, c.maxPositionEmbeddings, c.rmsNormEps, c.ropeTheta, c.ropeScaling.type], [4, 16, 4096, 1e-6, 10000, "default"]);
  const linear = parseModelConfig({ ...base, rope_scaling: { rope_type: null, type: "linear", factor: 2 } });
  assert.equal(linear.ropeScaling.factor, 2);
});

test("accepted llama3 parameters give finite inverse frequencies", () => {
  for (const [low, high] of [[1, 4], [0.5, 0.6], [1e-3, 1e3]]) {
    const c = parseModelConfig({ ...base, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: 64 } });
    assert.ok([...ropeInvFreq(c)].every((f) => Number.isFinite(f) && f > 0), `low ${low}, high ${high}`);
  }
});
