// tokenizer.json + tokenizer_config.json through @huggingface/tokenizers, chat templates
// through @huggingface/jinja.

import fs from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { TokenizerError } from "../errors.js";
import { readJsonFile } from "../util/atomic.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

function tokenText(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return null;
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
  ) {
    this.bosToken = tokenText(config.bos_token);
    this.eosToken = tokenText(config.eos_token);
    try {
      this.template = chatTemplate ? new Template(chatTemplate) : null;
    } catch (e) {
      throw new TokenizerError(`chat template does not parse: ${(e as Error).message}`);
    }
  }

  /** Load from a model folder: tokenizer.json (required), tokenizer_config.json, chat template. */
  static fromDir(dir: string): TextTokenizer {
    const tjPath = path.join(dir, "tokenizer.json");
    if (!fs.existsSync(tjPath)) throw new TokenizerError(`${dir}: no tokenizer.json (a Hugging Face tokenizers file is required)`);
    const tj = readJsonFile(tjPath, TokenizerError) as Record<string, unknown>;
    const tcPath = path.join(dir, "tokenizer_config.json");
    const tc = fs.existsSync(tcPath) ? (readJsonFile(tcPath, TokenizerError) as Record<string, unknown>) : {};
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(tj, tc);
    } catch (e) {
      throw new TokenizerError(`${tjPath}: cannot build the tokenizer: ${(e as Error).message}`);
    }
    let chatTemplate: string | null = null;
    const jinjaPath = path.join(dir, "chat_template.jinja");
    const ctJsonPath = path.join(dir, "chat_template.json");
    if (typeof tc.chat_template === "string") chatTemplate = tc.chat_template;
    else if (Array.isArray(tc.chat_template)) {
      const named = tc.chat_template as { name?: string; template?: string }[];
      chatTemplate = (named.find((t) => t.name === "default") ?? named[0])?.template ?? null;
    } else if (fs.existsSync(jinjaPath)) chatTemplate = fs.readFileSync(jinjaPath, "utf8");
    else if (fs.existsSync(ctJsonPath)) {
      const ct = readJsonFile(ctJsonPath, TokenizerError) as { chat_template?: unknown };
      if (typeof ct.chat_template === "string") chatTemplate = ct.chat_template;
    }
    const vocab = tok.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    return new TextTokenizer(tok, tc, chatTemplate, maxId + 1);
  }

  /** Token ids of `text`; special tokens (e.g. BOS) added as the tokenizer's post-processor says. */
  encode(text: string, addSpecialTokens = true): number[] {
    return this.tok.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: number[], skipSpecialTokens = true): string {
    if (ids.length === 0) return "";
    return this.tok.decode(ids, { skip_special_tokens: skipSpecialTokens });
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
  applyChatTemplate(messages: ChatMessage[], addGenerationPrompt = true): string {
    if (!this.template) throw new TokenizerError("this model has no chat template (tokenizer_config.json chat_template, chat_template.jinja)");
    try {
      return this.template.render({
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
  encodeChat(messages: ChatMessage[], addGenerationPrompt = true): number[] {
    return this.encode(this.applyChatTemplate(messages, addGenerationPrompt), false);
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
