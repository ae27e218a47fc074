/**
 * A model's chat template (`tokenizer_config.json` `chat_template`, or `chat_template.jinja`)
 * rendered with `@huggingface/jinja`, the way transformers' `apply_chat_template` renders it:
 * `messages`, `add_generation_prompt`, the special tokens as `bos_token`/`eos_token`/…, plus any
 * extra variables (e.g. Qwen3's `enable_thinking`, verl's `apply_chat_template_kwargs`).
 *
 * Left out: tools, documents and multimodal content (prompts here are text).
 */
import { Template } from "@huggingface/jinja";
import type { ChatMessage } from "./types.js";

export class ChatTemplate {
  private readonly template: Template;

  /** `source` is the Jinja text; `vars` are passed to every render (special tokens, kwargs). */
  constructor(
    readonly source: string,
    private readonly vars: Record<string, unknown>,
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new Error(`chat template does not parse: ${(err as Error).message}`);
    }
  }

  render(messages: readonly ChatMessage[], addGenerationPrompt = true): string {
    try {
      return this.template.render({
        ...this.vars,
        messages: messages.map((m) => ({ role: m.role, content: m.content })),
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (err) {
      throw new Error(`chat template failed to render: ${(err as Error).message}`);
    }
  }
}

/**
 * The template text from a `tokenizer_config.json` `chat_template` value: a string, or a list of
 * named templates (older files) of which "default" is the one used for plain chat.
 */
export function templateSource(value: unknown, where: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.find((t) => t?.name === "default") ?? value[0];
    if (typeof named?.template === "string") return named.template;
  }
  throw new Error(`${where}: chat_template must be a string or a list of {name, template}`);
}
