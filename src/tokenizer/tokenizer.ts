// tokenizer.json + tokenizer_config.json through @huggingface/tokenizers, chat templates
// through @huggingface/jinja.

import fs from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { TokenizerError } from "../errors.js";
import { readJsonFile, readJsonObject, readTextFile } from "../util/atomic.js";
import { preview } from "../util/json.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /** An earlier assistant turn's thinking (Qwen3's template renders it in <think> … </think>). */
  reasoning_content?: string;
  /** An assistant turn's tool calls, as transformers passes them to templates. */
  tool_calls?: { type?: string; function: { name: string; arguments: string | Record<string, unknown> } }[];
}

/** Extra template variables, as transformers' apply_chat_template(**kwargs) passes them. */
export interface ChatTemplateOptions {
  /** Qwen3 and other hybrid-thinking templates: false asks for an empty <think></think> block. */
  enable_thinking?: boolean;
  /** Function schemas for templates with a tools section. */
  tools?: Record<string, unknown>[];
}

function tokenText(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return null;
}

/** Ids above this are refused unless the caller knows the model's vocabulary size (config.json vocab_size). */
export const DEFAULT_MAX_VOCAB = 2 ** 24;

export interface TokenizerOptions {
  /** Every token id must be below this (the model's vocab_size); default DEFAULT_MAX_VOCAB. */
  maxVocab?: number;
}

/** "id 5", "id \"5\"", "no id" — a token's id as its file gives it. */
const idText = (id: unknown): string => (id === undefined ? "no id" : `id ${preview(id)}`);

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * Check the parts of tokenizer.json that @huggingface/tokenizers trusts: the model's vocabulary
 * and the added tokens. One id of 2e9 would otherwise make it walk a 2e9-slot array (a minute of
 * CPU) before anything fails. Returns the vocabulary size: the largest id + 1.
 */
export function checkTokenizerJson(tj: unknown, file: string, maxVocab = DEFAULT_MAX_VOCAB): number {
  function fail(what: string): never {
    throw new TokenizerError(`${file}: ${what}`);
  }
  if (!isObject(tj)) fail("expected a JSON object with a \"model\" (a Hugging Face tokenizers file)");
  const model = (tj as Record<string, unknown>).model;
  if (!isObject(model)) fail(`"model" must be an object with a "vocab" (got ${preview(model)})`);
  const m = model as Record<string, unknown>;
  const type = m.type ?? null;
  const vocab = m.vocab;
  const limit = `ids must be integers in [0, ${maxVocab})`;
  let maxId = -1;
  if (type === "Unigram" || (type === null && Array.isArray(vocab))) {
    // Unigram: a list of [token, score]; a token's id is its position
    if (!Array.isArray(vocab)) fail(`model.vocab of a Unigram model must be a list of [token, score] (got ${typeof vocab})`);
    const list = vocab as unknown[];
    if (list.length > maxVocab) fail(`model.vocab has ${list.length} tokens; ${limit}`);
    list.forEach((e, i) => {
      if (!Array.isArray(e) || e.length < 2 || typeof e[0] !== "string" || typeof e[1] !== "number" || !Number.isFinite(e[1])) {
        fail(`model.vocab[${i}] must be [token, score] (got ${preview(e)})`);
      }
    });
    maxId = list.length - 1;
    if (m.unk_id != null && !(Number.isInteger(m.unk_id) && (m.unk_id as number) >= 0 && (m.unk_id as number) < list.length)) {
      fail(`model.unk_id ${preview(m.unk_id)} is not the index of a token in model.vocab (0 … ${list.length - 1})`);
    }
  } else {
    // BPE, WordPiece, WordLevel: an object token → id
    if (!isObject(vocab)) fail(`model.vocab must be an object mapping each token to its id (got ${preview(vocab)})`);
    for (const [token, id] of Object.entries(vocab as Record<string, unknown>)) {
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= maxVocab) {
        fail(`token ${preview(token)} in model.vocab has ${idText(id)}; ${limit}`);
      }
      if (id > maxId) maxId = id;
    }
    // an unknown piece of text encodes as unk_token: it must be a token, or encode gives no id at all
    if (m.unk_token != null && (typeof m.unk_token !== "string" || !Object.hasOwn(vocab as object, m.unk_token))) {
      fail(`model.unk_token ${preview(m.unk_token)} is not a token of model.vocab`);
    }
  }
  const added = (tj as Record<string, unknown>).added_tokens ?? [];
  if (!Array.isArray(added)) fail(`"added_tokens" must be a list (got ${preview(added)})`);
  (added as unknown[]).forEach((t, i) => {
    if (!isObject(t) || typeof t.content !== "string") fail(`added_tokens[${i}] must be an object with a "content" string and an "id"`);
    const { content, id } = t as { content: string; id: unknown };
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= maxVocab) {
      fail(`added token ${preview(content)} (added_tokens[${i}]) has ${idText(id)}; ${limit}`);
    }
    if (id > maxId) maxId = id;
  });
  return maxId + 1;
}

/** tokenizer_config.json's chat_template: a string, or a list of {name, template} (the "default" one, else the first). */
function chatTemplateOf(tc: Record<string, unknown>, file: string): string | null {
  const t = tc.chat_template;
  if (t == null) return null;
  if (typeof t === "string") return t;
  const named = Array.isArray(t) ? t : [];
  if (!Array.isArray(t) || !named.every((x) => isObject(x) && typeof x.template === "string")) {
    throw new TokenizerError(`${file}: "chat_template" must be a string or a list of {"name", "template"} objects`);
  }
  const list = named as { name?: unknown; template: string }[];
  return (list.find((x) => x.name === "default") ?? list[0])?.template ?? null;
}

/** The fields of a JSON object that are not null ("bos_token": null means no BOS token, as if absent). */
function withoutNulls(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null));
}

export class TextTokenizer {
  private readonly template: Template | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;

  constructor(
    private readonly tok: Tokenizer,
    readonly config: Record<string, unknown>,
    readonly chatTemplate: string | null,
    readonly vocabSize: number,
    /** What the tokenizer was read from, for messages (tokenizer.json's path). */
    readonly source = "tokenizer",
    /** Where the chat template came from, for messages. */
    templateSource = "chat template",
  ) {
    this.bosToken = tokenText(config.bos_token);
    this.eosToken = tokenText(config.eos_token);
    try {
      this.template = chatTemplate ? new Template(chatTemplate) : null;
    } catch (e) {
      throw new TokenizerError(`${templateSource}: chat template does not parse: ${(e as Error).message}`);
    }
  }

  /**
   * Load from a model folder: tokenizer.json (required), tokenizer_config.json, chat template.
   * `maxVocab` (the model's vocab_size) bounds every token id.
   */
  static fromDir(dir: string, opts: TokenizerOptions = {}): TextTokenizer {
    const tjPath = path.join(dir, "tokenizer.json");
    if (!fs.existsSync(tjPath)) throw new TokenizerError(`${dir}: no tokenizer.json (a Hugging Face tokenizers file is required)`);
    const tj = readJsonFile(tjPath, TokenizerError);
    const vocabSize = checkTokenizerJson(tj, tjPath, opts.maxVocab ?? DEFAULT_MAX_VOCAB);
    const tcPath = path.join(dir, "tokenizer_config.json");
    const tc = fs.existsSync(tcPath) ? withoutNulls(readJsonObject(tcPath, TokenizerError)) : {};
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(tj as Record<string, unknown>, tc);
    } catch (e) {
      throw new TokenizerError(`${tjPath}: cannot build the tokenizer${fs.existsSync(tcPath) ? ` (with ${tcPath})` : ""}: ${(e as Error).message}`);
    }
    let chatTemplate = chatTemplateOf(tc, tcPath);
    let templateSource = tcPath;
    const jinjaPath = path.join(dir, "chat_template.jinja");
    const ctJsonPath = path.join(dir, "chat_template.json");
    if (chatTemplate !== null) {
      // from tokenizer_config.json
    } else if (fs.existsSync(jinjaPath)) {
      chatTemplate = readTextFile(jinjaPath, TokenizerError);
      templateSource = jinjaPath;
    } else if (fs.existsSync(ctJsonPath)) {
      chatTemplate = chatTemplateOf(withoutNulls(readJsonObject(ctJsonPath, TokenizerError)), ctJsonPath);
      templateSource = ctJsonPath;
    }
    return new TextTokenizer(tok, tc, chatTemplate, vocabSize, tjPath, templateSource);
  }

  /** A failure inside @huggingface/tokenizers on a file that passed our checks: say which file. */
  private wrap<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof TokenizerError) throw e;
      throw new TokenizerError(`${this.source}: cannot ${what}: ${(e as Error)?.message ?? String(e)}`);
    }
  }

  /** Token ids of `text`; special tokens (e.g. BOS) added as the tokenizer's post-processor says. */
  encode(text: string, addSpecialTokens = true): number[] {
    const ids: number[] = this.wrap("encode text", () => this.tok.encode(text, { add_special_tokens: addSpecialTokens }).ids);
    const at = ids.findIndex((id) => !(Number.isInteger(id) && id >= 0 && id < this.vocabSize));
    if (at >= 0) {
      // a last guard: @huggingface/tokenizers gives `undefined` for an unknown piece whose unk_token has no id
      throw new TokenizerError(
        `${this.source}: encoding ${JSON.stringify(text.length > 40 ? text.slice(0, 40) + "…" : text)} gave token id ${ids[at]}, not one of the vocabulary's 0 … ${this.vocabSize - 1} (text the vocabulary cannot spell, and no unk_token?)`,
      );
    }
    return ids;
  }

  decode(ids: number[], skipSpecialTokens = true): string {
    if (ids.length === 0) return "";
    return this.wrap("decode token ids", () => this.tok.decode(ids, { skip_special_tokens: skipSpecialTokens }));
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  get hasChatTemplate(): boolean {
    return this.template !== null;
  }

  /** Render messages with the chat template (as transformers' apply_chat_template, tokenize=False). */
  applyChatTemplate(messages: ChatMessage[], addGenerationPrompt = true, options: ChatTemplateOptions = {}): string {
    if (!this.template) throw new TokenizerError("this model has no chat template (tokenizer_config.json chat_template, chat_template.jinja)");
    try {
      return this.template.render({
        ...options,
        messages,
        add_generation_prompt: addGenerationPrompt,
        bos_token: this.bosToken ?? "",
        eos_token: this.eosToken ?? "",
      });
    } catch (e) {
      throw new TokenizerError(`chat template failed to render: ${(e as Error).message}`);
    }
  }

  /** Ids of a chat prompt: the rendered template carries its own special tokens. */
  encodeChat(messages: ChatMessage[], addGenerationPrompt = true, options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, addGenerationPrompt, options), false);
  }
}

/**
 * Turns a growing list of token ids into text deltas, holding back bytes that do not yet
 * form a whole UTF-8 character (byte-fallback tokens) — vLLM's prefix/read offsets.
 */
export class IncrementalDecoder {
  private ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly tokenizer: TextTokenizer, context: number[] = []) {
    // A few context tokens let decoders that strip a leading space (SentencePiece) emit it.
    this.ids = context.slice(-4);
    this.prefixOffset = 0;
    this.readOffset = this.ids.length;
  }

  /** Add one token; returns the new text it completes (possibly ""). */
  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const fullText = this.tokenizer.decode(this.ids.slice(this.prefixOffset));
    if (fullText.length > prefixText.length && !fullText.endsWith("\uFFFD")) {
      const delta = fullText.slice(prefixText.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return delta;
    }
    return "";
  }
}
