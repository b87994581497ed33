// A GGUF file's tokenizer.* entries → the Hugging Face tokenizer.json those entries came from,
// built in memory and run by @huggingface/tokenizers, so a .gguf tokenizes like its original.
//   "llama" (SentencePiece BPE: Llama 1/2, TinyLlama, stories): merges recovered from the piece
//     scores as transformers' SentencePiece converter does; ▁ for spaces; byte fallback.
//   "gpt2" (byte-level BPE: Qwen2/2.5/3, DeepSeek-R1-Distill, Llama 3): the stored merges and the
//     pre-tokenizer regex that tokenizer.ggml.pre names.
// llama.cpp on the same file is the reference (test/tokenizer/gguf-tokenizer.test.ts).

import { Tokenizer } from "@huggingface/tokenizers";
import { TokenizerError } from "../errors.js";
import { TextTokenizer } from "./tokenizer.js";

/** llama.cpp's token types (llama_token_type). */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

// Pre-tokenizer regexes of the byte-level vocabularies, by tokenizer.ggml.pre (llama.cpp's names).
const QWEN2_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const LLAMA3_SPLIT = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const GPT2_SPLIT = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
export const BYTE_LEVEL_PRE: Record<string, { split: string; nfc: boolean }> = {
  qwen2: { split: QWEN2_SPLIT, nfc: true },
  "deepseek-r1-qwen": { split: QWEN2_SPLIT, nfc: true },
  "llama-bpe": { split: LLAMA3_SPLIT, nfc: false },
  llama3: { split: LLAMA3_SPLIT, nfc: false },
  gpt2: { split: GPT2_SPLIT, nfc: false },
  default: { split: GPT2_SPLIT, nfc: false },
};

/** The metadata of a GGUF file (model/gguf.ts reads it; only the values are needed here). */
export interface GgufMetadata {
  metadata: Map<string, { value: unknown }>;
}
type GgufFile = GgufMetadata;

function entry(g: GgufFile, key: string): unknown {
  const e = g.metadata.get(key);
  if (!e) return undefined;
  const v = e.value;
  if (typeof v === "object" && v !== null && "values" in v) return (v as { values: unknown[] }).values;
  return typeof v === "bigint" ? Number(v) : v;
}

function stringList(g: GgufFile, key: string, file: string): string[] {
  const v = entry(g, key);
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new TokenizerError(`${file}: "${key}" must be a list of strings`);
  return v as string[];
}

function numberList(g: GgufFile, key: string, n: number, file: string): number[] | null {
  const v = entry(g, key);
  if (v === undefined) return null;
  if (!Array.isArray(v) || v.length !== n || v.some((x) => typeof x !== "number" || !Number.isFinite(x))) {
    throw new TokenizerError(`${file}: "${key}" must be a list of ${n} numbers (one per token)`);
  }
  return v as number[];
}

function optionalId(g: GgufFile, key: string, n: number, file: string): number | null {
  const v = entry(g, key);
  if (v === undefined) return null;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new TokenizerError(`${file}: "${key}" must be a token id (got ${String(v)})`);
  // some converters write an id past the vocabulary for "none" (e.g. a padding id): treat as absent
  return v < n ? v : null;
}

/**
 * SentencePiece merges from the piece scores, as transformers' SentencePieceExtractor: every
 * split of a piece into two pieces is a merge, ranked by the merged piece's score (highest first),
 * then by the ids of its halves.
 */
export function mergesFromScores(tokens: string[], scores: number[], mergeable: (id: number) => boolean): string[] {
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (mergeable(i) && !ids.has(t)) ids.set(t, i);
  });
  const merges: { l: number; r: number; piece: number }[] = [];
  for (const [piece, id] of ids) {
    const chars = Array.from(piece);
    for (let k = 1; k < chars.length; k++) {
      const l = ids.get(chars.slice(0, k).join(""));
      const r = ids.get(chars.slice(k).join(""));
      if (l !== undefined && r !== undefined) merges.push({ l, r, piece: id });
    }
  }
  merges.sort((a, b) => scores[b.piece] - scores[a.piece] || a.piece - b.piece || a.l - b.l || a.r - b.r);
  return merges.map((m) => `${tokens[m.l]} ${tokens[m.r]}`);
}

interface Special {
  id: number;
  content: string;
}

function addedToken(id: number, content: string, special: boolean) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}

function templateProcessor(bos: Special | null, eos: Special | null) {
  const single: unknown[] = [];
  const specials: Record<string, { id: string; ids: number[]; tokens: string[] }> = {};
  if (bos) {
    single.push({ SpecialToken: { id: bos.content, type_id: 0 } });
    specials[bos.content] = { id: bos.content, ids: [bos.id], tokens: [bos.content] };
  }
  single.push({ Sequence: { id: "A", type_id: 0 } });
  if (eos) {
    single.push({ SpecialToken: { id: eos.content, type_id: 0 } });
    specials[eos.content] = { id: eos.content, ids: [eos.id], tokens: [eos.content] };
  }
  return { type: "TemplateProcessing", single, pair: [...single, { Sequence: { id: "B", type_id: 1 } }], special_tokens: specials };
}

/** The tokenizer (and chat template) a GGUF file describes. `maxVocab`: the model's vocabulary size. */
export function tokenizerFromGguf(g: GgufFile, file: string, maxVocab: number): TextTokenizer {
  const kind = entry(g, "tokenizer.ggml.model");
  if (kind === undefined) throw new TokenizerError(`${file}: no tokenizer.ggml.model entry (this GGUF carries no tokenizer)`);
  const tokens = stringList(g, "tokenizer.ggml.tokens", file);
  const n = tokens.length;
  if (n > maxVocab) throw new TokenizerError(`${file}: the tokenizer has ${n} tokens but the model's embedding has ${maxVocab} rows`);
  const types = numberList(g, "tokenizer.ggml.token_type", n, file) ?? tokens.map(() => TOKEN_TYPE.normal);
  const bosId = optionalId(g, "tokenizer.ggml.bos_token_id", n, file);
  const eosId = optionalId(g, "tokenizer.ggml.eos_token_id", n, file);
  const unkId = optionalId(g, "tokenizer.ggml.unknown_token_id", n, file);
  const addBosEntry = entry(g, "tokenizer.ggml.add_bos_token");
  const addEos = entry(g, "tokenizer.ggml.add_eos_token") === true;
  const bos = bosId === null ? null : { id: bosId, content: tokens[bosId] };
  const eos = eosId === null ? null : { id: eosId, content: tokens[eosId] };
  const special = (i: number) => types[i] === TOKEN_TYPE.control || types[i] === TOKEN_TYPE.unknown;
  const added = tokens.flatMap((t, i) => (special(i) || types[i] === TOKEN_TYPE.userDefined ? [addedToken(i, t, special(i))] : []));
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i;
  });
  let tj: Record<string, unknown>;
  let addBos: boolean;
  if (kind === "llama") {
    const scores = numberList(g, "tokenizer.ggml.scores", n, file);
    if (!scores) throw new TokenizerError(`${file}: a SentencePiece ("llama") tokenizer needs tokenizer.ggml.scores`);
    const prefix = entry(g, "tokenizer.ggml.add_space_prefix") !== false;
    addBos = addBosEntry !== false; // llama.cpp's default for SentencePiece vocabularies
    const merges = mergesFromScores(tokens, scores, (i) => types[i] === TOKEN_TYPE.normal || types[i] === TOKEN_TYPE.userDefined);
    tj = {
      version: "1.0",
      added_tokens: added,
      normalizer: {
        type: "Sequence",
        normalizers: [...(prefix ? [{ type: "Prepend", prepend: "▁" }] : []), { type: "Replace", pattern: { String: " " }, content: "▁" }],
      },
      pre_tokenizer: null,
      post_processor: templateProcessor(addBos ? bos : null, addEos ? eos : null),
      decoder: {
        type: "Sequence",
        decoders: [
          { type: "Replace", pattern: { String: "▁" }, content: " " },
          { type: "ByteFallback" },
          { type: "Fuse" },
          ...(prefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
        ],
      },
      model: {
        type: "BPE", dropout: null, unk_token: unkId === null ? null : tokens[unkId], continuing_subword_prefix: null,
        end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges,
      },
    };
  } else if (kind === "gpt2") {
    const pre = String(entry(g, "tokenizer.ggml.pre") ?? "default");
    const rules = BYTE_LEVEL_PRE[pre];
    if (!rules) {
      throw new TokenizerError(`${file}: byte-level pre-tokenizer "${pre}" is not supported; supported: ${Object.keys(BYTE_LEVEL_PRE).join(", ")}`);
    }
    const merges = stringList(g, "tokenizer.ggml.merges", file);
    addBos = addBosEntry === true;
    const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
    tj = {
      version: "1.0",
      added_tokens: added,
      normalizer: rules.nfc ? { type: "NFC" } : null,
      pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Split", pattern: { Regex: rules.split }, behavior: "Isolated", invert: false }, byteLevel] },
      post_processor: { type: "Sequence", processors: [byteLevel, templateProcessor(addBos ? bos : null, addEos ? eos : null)] },
      decoder: byteLevel,
      model: {
        type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "",
        fuse_unk: false, byte_fallback: false, ignore_merges: pre === "llama-bpe" || pre === "llama3", vocab, merges,
      },
    };
  } else {
    throw new TokenizerError(`${file}: tokenizer.ggml.model "${String(kind)}" is not supported; supported: llama (SentencePiece), gpt2 (byte-level BPE)`);
  }
  const template = entry(g, "tokenizer.chat_template");
  const config: Record<string, unknown> = {
    add_bos_token: addBos,
    add_eos_token: addEos,
    bos_token: bos?.content ?? null,
    eos_token: eos?.content ?? null,
    unk_token: unkId === null ? null : tokens[unkId],
  };
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(tj, config);
  } catch (e) {
    throw new TokenizerError(`${file}: cannot build the tokenizer from its tokenizer.* entries: ${(e as Error).message}`);
  }
  return new TextTokenizer(tok, config, typeof template === "string" ? template : null, n, file, `${file} (tokenizer.chat_template)`);
}
