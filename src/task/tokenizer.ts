// A word-level tokenizer for the task, in Hugging Face tokenizers format (so the normal
// loading path reads it): newlines padded with spaces, Metaspace splitting (▁word), a BPE
// whose merges rebuild each known word from its characters, and single characters for the
// rest (digits inside \boxed{758} stay one token each).

export const SPECIAL = ["<unk>", "<s>", "</s>"] as const;

/** The chat template: BOS, the user turn, then the solution header the model continues. */
// (newlines as expressions: chat templates are rendered with trim_blocks, which eats a newline after a tag)
export const CHAT_TEMPLATE = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}{{ '\\n' }}solution :{{ '\\n' }}{% endif %}";

/**
 * words: plain words (▁word tokens); pairs: fused words "left=right" (one token each), where
 * left is one of the words. BPE applies merges in list order, so the merges of plain words
 * come first (▁k13 is built before a bare k13 could form), then the bare right parts, then
 * ▁left= and ▁left=right.
 */
export function buildTokenizerJson(words: string[], pairs: [string, string][] = []): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  const add = (t: string) => {
    if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  };
  for (const s of SPECIAL) add(s);
  add("▁");
  const chars = new Set<string>();
  for (const w of words) for (const ch of w) chars.add(ch);
  for (const ch of [...chars].sort()) add(ch);
  const merges: string[] = [];
  for (const w of words) {
    let prefix = "▁";
    for (const ch of w) {
      const next = prefix + ch;
      if (!(next in vocab)) {
        merges.push(`${prefix} ${ch}`);
        add(next);
      }
      prefix = next;
    }
  }
  const merge = (a: string, b: string) => {
    if (!(a + b in vocab)) {
      merges.push(`${a} ${b}`);
      add(a + b);
    }
  };
  for (const [, right] of pairs) {
    if (!(right in vocab)) for (let i = 1; i < right.length; i++) merge(right.slice(0, i), right[i]);
  }
  for (const [left, right] of pairs) {
    if (!words.includes(left)) throw new Error(`fused word ${left}=${right}: ${left} is not a word`);
    for (const ch of "=" + right) if (!chars.has(ch)) add(ch);
    merge("▁" + left, "=");
    merge("▁" + left + "=", right);
  }
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: "Replace", pattern: { String: "\n" }, content: " \n " },
    pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: true },
    post_processor: null,
    decoder: { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: true },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
}

export function buildTokenizerConfig(): Record<string, unknown> {
  return {
    add_bos_token: false,
    add_eos_token: false,
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    pad_token: null,
    model_max_length: 4096,
    chat_template: CHAT_TEMPLATE,
    tokenizer_class: "PreTrainedTokenizerFast",
    clean_up_tokenization_spaces: false,
  };
}
