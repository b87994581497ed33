// The library entry: `import { loadModel, generate } from "pm-kvq"`.

export * from "./errors.js";
export { parseModelConfig, kvHidden, SUPPORTED_ARCHITECTURES, SUPPORTED_ROPE_TYPES, type ModelConfig } from "./model/config.js";
export { loadModel, loadTransformer, CheckpointTensors, type LoadedModel, type GenerationDefaults } from "./model/checkpoint.js";
export { Transformer, type LogitsMode, type ForwardHooks } from "./model/forward.js";
export { readSafetensorsHeader, SafetensorsFile, writeSafetensors, encodeSafetensors } from "./model/safetensors.js";
export { TextTokenizer, IncrementalDecoder, type ChatMessage } from "./tokenizer/tokenizer.js";
export { KvCache, type LayerKvCache, type KvBlockStats, type KvStats, type KvShape } from "./model/kv-cache.js";
export { createFullPrecisionCache, FullPrecisionLayerCache } from "./cache/full.js";
export { generate, resolveSampling, type GenerateOptions, type GenerateResult, type FinishReason } from "./generate/generate.js";
export { sampleToken, argmax } from "./generate/sampler.js";
export { Rng } from "./util/rng.js";
