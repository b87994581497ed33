// A multi-turn chat session that keeps its KV cache across turns: each turn feeds only
// the text the chat template adds after what the cache already holds.

import type { KvCache } from "../cache/types.js";
import { KvBudgetError } from "../errors.js";
import type { LoadedModel } from "../model/checkpoint.js";
import type { ChatMessage } from "../tokenizer/tokenizer.js";
import { generate, type GenerateOptions, type GenerateResult } from "./generate.js";

export interface ChatTurnResult extends GenerateResult {
  /** Tokens fed for this turn (the new part of the conversation). */
  newPromptTokens: number;
  /** True when the cache could not be extended and the conversation was re-read. */
  rebuilt: boolean;
}

export class ChatSession {
  messages: ChatMessage[] = [];
  /** Text the cache holds, as the chat template would render it. */
  private cachedText = "";
  private cacheValid = true;

  constructor(
    readonly model: LoadedModel,
    private readonly cache: KvCache,
    private readonly system?: string,
  ) {
    if (system) this.messages.push({ role: "system", content: system });
  }

  reset(): void {
    this.messages = this.system ? [{ role: "system", content: this.system }] : [];
    this.cache.reset();
    this.cachedText = "";
    this.cacheValid = true;
  }

  /** Without a chat template, a user turn starts a new line and the reply continues it. */
  private render(messages: ChatMessage[]): string {
    if (this.model.tokenizer.hasChatTemplate) return this.model.tokenizer.applyChatTemplate(messages, true);
    return messages.map((m, i) => (m.role === "assistant" || i === 0 ? m.content : "\n" + m.content)).join("");
  }

  send(userText: string, opts: Omit<GenerateOptions, "cache"> = {}): ChatTurnResult {
    const tok = this.model.tokenizer;
    this.messages.push({ role: "user", content: userText });
    const full = this.render(this.messages);
    let rebuilt = false;
    let newIds: number[];
    if (this.cacheValid && this.cache.length > 0 && full.startsWith(this.cachedText)) {
      newIds = tok.encode(full.slice(this.cachedText.length), false);
    } else {
      rebuilt = this.cache.length > 0 || !this.cacheValid;
      this.cache.reset();
      // a template writes its own BOS; plain text gets the tokenizer's
      newIds = tok.encode(full, !tok.hasChatTemplate);
    }
    // The reply as it continues the prompt text (a leading space a decoder would strip is kept),
    // so that the next rendering of the conversation starts with exactly what the cache holds.
    let continuation = "";
    const result = generate(this.model, newIds, {
      ...opts,
      cache: this.cache,
      onText: (d) => {
        continuation += d;
        opts.onText?.(d);
      },
    });
    // generation does not feed its last token when it stops at the length limit; the next
    // turn continues after it, so the cache must hold it
    let cacheValid = result.finishReason !== "kv_budget";
    if (result.finishReason === "length" && result.ids.length > 0) {
      try {
        this.model.transformer.forward([result.ids[result.ids.length - 1]], [this.cache.length], this.cache, "none");
      } catch (e) {
        if (!(e instanceof KvBudgetError)) throw e;
        cacheValid = false;
      }
    }
    this.messages.push({ role: "assistant", content: continuation });
    this.cachedText = full + continuation;
    this.cacheValid = cacheValid;
    return { ...result, newPromptTokens: newIds.length, rebuilt };
  }
}
