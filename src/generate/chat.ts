// A multi-turn chat session that keeps its KV cache across turns: each turn feeds only
// the text the chat template adds after what the cache already holds.

import type { KvCache } from "../cache/types.js";
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

  /** Without a chat template, turns are plain text joined by newlines. */
  private render(messages: ChatMessage[]): string {
    if (this.model.tokenizer.hasChatTemplate) return this.model.tokenizer.applyChatTemplate(messages, true);
    return messages.map((m) => m.content).join("\n");
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
    const result = generate(this.model, newIds, { ...opts, cache: this.cache });
    this.messages.push({ role: "assistant", content: result.text });
    this.cachedText = full + result.text;
    this.cacheValid = result.finishReason !== "kv_budget";
    return { ...result, newPromptTokens: newIds.length, rebuilt };
  }
}
