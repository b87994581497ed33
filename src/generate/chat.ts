// A multi-turn chat session that keeps its KV cache across turns. Each turn tokenizes the
// whole conversation, keeps the longest prefix of it the cache already holds (cutting the
// cache there), and feeds only the rest — so a template that renders past turns differently
// from the generation prompt costs the differing tail, not the whole conversation.

import type { KvCache } from "../model/kv-cache.js";
import { KvBudgetError, UsageError } from "../errors.js";
import type { LoadedModel } from "../model/checkpoint.js";
import type { ChatMessage } from "../tokenizer/tokenizer.js";
import { checkPromptFits, contextSource, generate, type GenerateOptions, type GenerateResult } from "./generate.js";

export interface ChatTurnResult extends GenerateResult {
  /** Tokens fed for this turn (the conversation past the reused prefix). */
  newPromptTokens: number;
  /** Tokens of the conversation reused from the cache. */
  reusedTokens: number;
  /** True when the cache held tokens but none could be reused (the conversation was re-read). */
  rebuilt: boolean;
}

/** Length of the longest common prefix of two id lists. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class ChatSession {
  messages: ChatMessage[] = [];
  /** The token ids the cache holds, in order. */
  private cachedIds: number[] = [];
  /** The text those ids render, when they are exactly a rendering of the conversation (else null). */
  private cachedText: string | null = "";

  constructor(
    readonly model: LoadedModel,
    private readonly cache: KvCache,
    private readonly system?: string,
    /** Positions the conversation may use (default: max_position_embeddings). */
    readonly contextLimit = model.config.maxPositionEmbeddings,
  ) {
    if (system) this.messages.push({ role: "system", content: system });
  }

  /** Tokens the cache holds. */
  get cachedTokens(): number {
    return this.cachedIds.length;
  }

  reset(): void {
    this.messages = this.system ? [{ role: "system", content: this.system }] : [];
    this.cache.reset();
    this.cachedIds = [];
    this.cachedText = "";
  }

  /** Without a chat template, turns are plain text, a user turn on a new line. */
  private render(messages: ChatMessage[]): string {
    const tok = this.model.tokenizer;
    if (tok.hasChatTemplate) return tok.applyChatTemplate(messages, true);
    return messages.map((m, i) => (m.role === "assistant" || i === 0 ? m.content : "\n" + m.content)).join("");
  }

  /**
   * The conversation's ids: the cached ids plus the new text's when the rendering extends what
   * the cache holds (its tokens stay as they were generated), else the whole rendering.
   */
  private conversationIds(full: string): number[] {
    const tok = this.model.tokenizer;
    if (this.cachedText !== null && this.cachedIds.length > 0 && full.startsWith(this.cachedText)) {
      return [...this.cachedIds, ...tok.encode(full.slice(this.cachedText.length), false)];
    }
    // a template writes its own BOS; plain text gets the tokenizer's
    return tok.encode(full, !tok.hasChatTemplate);
  }

  /**
   * One turn. A turn whose conversation no longer fits the context is refused (UsageError) and
   * leaves the conversation as it was; a reply that reaches the limit stops with "context".
   */
  send(userText: string, opts: Omit<GenerateOptions, "cache" | "contextLimit"> = {}): ChatTurnResult {
    const messages: ChatMessage[] = [...this.messages, { role: "user", content: userText }];
    const full = this.render(messages);
    const ids = this.conversationIds(full);
    if (ids.length === 0) throw new UsageError("the conversation encodes to no tokens");
    // reuse the longest cached prefix; at least one token is fed to get the next token's logits
    const common = Math.min(commonPrefixLength(this.cachedIds, ids), ids.length - 1);
    checkPromptFits(ids.length - common, common, this.contextLimit, "this turn", contextSource(this.model, this.contextLimit));
    const held = this.cachedIds.length;
    const kept = this.cache.truncate(common);
    this.cachedIds.length = kept;
    const newIds = ids.slice(kept);
    // the reply as it continues the prompt text (a leading space a decoder would strip is kept)
    let continuation = "";
    const result = generate(this.model, newIds, {
      ...opts,
      cache: this.cache,
      contextLimit: this.contextLimit,
      onText: (d) => {
        continuation += d;
        opts.onText?.(d);
      },
    });
    this.messages = [...messages, { role: "assistant", content: continuation }];
    const out = { ...result, newPromptTokens: newIds.length, reusedTokens: kept, rebuilt: held > 0 && kept === 0 };
    // generation does not feed its last token when it stops at the length limit; the next turn
    // continues after it, so the cache takes it now (when a position is left)
    const fed = result.finishReason === "stop" ? result.ids : result.ids.slice(0, -1);
    let complete = result.finishReason === "stop" || result.ids.length === 0;
    if (result.finishReason === "length" && result.ids.length > 0 && this.cache.length < this.contextLimit && this.cache.length === kept + newIds.length + fed.length) {
      try {
        this.model.transformer.forward([result.ids[result.ids.length - 1]], [this.cache.length], this.cache, "none");
        fed.push(result.ids[result.ids.length - 1]);
        complete = true;
      } catch (e) {
        if (!(e instanceof KvBudgetError)) throw e;
      }
    }
    if (result.finishReason === "kv_budget" || this.cache.length !== kept + newIds.length + fed.length) {
      // a failed append may leave blocks at different lengths: start clean next turn
      this.cache.reset();
      this.cachedIds = [];
      this.cachedText = "";
      return out;
    }
    this.cachedIds.push(...newIds, ...fed);
    this.cachedText = complete ? full + continuation : null;
    return out;
  }
}
