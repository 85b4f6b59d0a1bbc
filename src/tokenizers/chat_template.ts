// Chat templates, rendered with @huggingface/jinja as transformers' apply_chat_template renders them with jinja2:
// trim_blocks and lstrip_blocks on, raise_exception() and strftime_now() available, and the variables messages,
// tools, documents, add_generation_prompt, the special tokens by name (bos_token, eos_token, pad_token, unk_token,
// additional_special_tokens) and any extra option the caller passes (e.g. `thinking: true`).
//
// A tokenizer without a chat template gets FALLBACK_CHAT_TEMPLATE: DeepSeek-V3's conversation format (the
// official V3 template's output for system/user/assistant/tool messages), with two of that template's slips fixed:
// a single tool call is closed with <｜tool▁calls▁end｜><｜end▁of▁sentence｜>, and an assistant message that has both
// content and tool calls keeps its content.
import { Template } from "@huggingface/jinja";
import { FathomError } from "../core/errors.js";
import type { Tokenizer } from "./tokenizer.js";

export interface ToolCall {
  id?: string;
  /** "function" (the only type the DeepSeek templates know). */
  type?: string;
  /** `arguments` is the JSON text of the arguments (DeepSeek's templates concatenate it as a string). */
  function: { name: string; arguments: string | Record<string, unknown> };
  [key: string]: unknown;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool" | (string & {});
  /** null for an assistant message that only calls tools. */
  content?: string | null;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  name?: string;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** End with the prompt that starts the assistant's reply (DeepSeek-V3: "<｜Assistant｜>"). Default false. */
  addGenerationPrompt?: boolean;
  /** Leave the last (assistant) message open so generation continues it. Default false. */
  continueFinalMessage?: boolean;
  /** Tool definitions (JSON schemas), passed to the template as `tools`. */
  tools?: readonly unknown[];
  /** Documents for retrieval templates, passed as `documents`. */
  documents?: readonly unknown[];
  /** Return token ids (encoded without adding special tokens: the template writes BOS) instead of text. */
  tokenize?: boolean;
  /** A template name from the tokenizer's named templates, or a template text to use instead of the tokenizer's. */
  chatTemplate?: string;
  /** Anything else is a template variable, passed as given (e.g. `thinking: true`). */
  [extra: string]: unknown;
}

const OP = "chat_template";

/** Fathom's chat template for tokenizers that have none: DeepSeek-V3's format (see the file comment). */
export const FALLBACK_CHAT_TEMPLATE = [
  "{%- set ns = namespace(system='', first_system=true, in_outputs=false) -%}",
  "{%- for m in messages if m['role'] == 'system' -%}",
  "{%- if ns.first_system -%}{%- set ns.system = m['content'] -%}{%- set ns.first_system = false -%}",
  "{%- else -%}{%- set ns.system = ns.system + '\\n\\n' + m['content'] -%}{%- endif -%}",
  "{%- endfor -%}",
  "{{- bos_token if bos_token else '' -}}{{- ns.system -}}",
  "{%- for m in messages -%}",
  "{%- if m['role'] == 'user' -%}",
  "{%- if ns.in_outputs -%}{{- '<｜tool▁outputs▁end｜>' -}}{%- set ns.in_outputs = false -%}{%- endif -%}",
  "{{- '<｜User｜>' + m['content'] -}}",
  "{%- elif m['role'] == 'assistant' -%}",
  "{%- if ns.in_outputs -%}{{- '<｜tool▁outputs▁end｜>' -}}{%- set ns.in_outputs = false -%}",
  "{%- else -%}{{- '<｜Assistant｜>' -}}{%- endif -%}",
  "{{- m['content'] if m['content'] else '' -}}",
  "{%- if m['tool_calls'] -%}",
  "{{- '<｜tool▁calls▁begin｜>' -}}",
  "{%- for call in m['tool_calls'] -%}",
  "{%- set args = call['function']['arguments'] -%}",
  "{{- ('' if loop.first else '\\n') + '<｜tool▁call▁begin｜>' + (call['type'] if call['type'] else 'function') + '<｜tool▁sep｜>' + call['function']['name'] + '\\n```json\\n' + (args if args is string else args | tojson) + '\\n```<｜tool▁call▁end｜>' -}}",
  "{%- endfor -%}",
  "{{- '<｜tool▁calls▁end｜>' -}}",
  "{%- endif -%}",
  "{{- eos_token if eos_token else '' -}}",
  "{%- elif m['role'] == 'tool' -%}",
  "{%- if ns.in_outputs -%}{{- '\\n' -}}{%- else -%}{{- '<｜tool▁outputs▁begin｜>' -}}{%- set ns.in_outputs = true -%}{%- endif -%}",
  "{{- '<｜tool▁output▁begin｜>' + m['content'] + '<｜tool▁output▁end｜>' -}}",
  "{%- elif m['role'] != 'system' -%}",
  "{{- raise_exception('unknown message role: ' + m['role']) -}}",
  "{%- endif -%}",
  "{%- endfor -%}",
  "{%- if ns.in_outputs -%}{{- '<｜tool▁outputs▁end｜>' -}}",
  "{%- elif add_generation_prompt -%}{{- '<｜Assistant｜>' -}}{%- endif -%}",
].join("\n");

const compiled = new Map<string, Template>();

/** Parses (once) and renders a chat template; errors, raise_exception() included, become FathomErrors. */
export function renderChatTemplate(template: string, context: Record<string, unknown>): string {
  let t = compiled.get(template);
  if (!t) {
    try { t = new Template(template); } catch (e) { throw new FathomError(OP, `cannot parse the chat template: ${(e as Error).message}`); }
    if (compiled.size >= 32) compiled.delete(compiled.keys().next().value!);
    compiled.set(template, t);
  }
  try {
    return t.render(context);
  } catch (e) {
    throw new FathomError(OP, `rendering failed: ${(e as Error).message}`);
  }
}

/** The template text applyChatTemplate uses for these options (transformers' selection rules). */
export function selectChatTemplate(tok: Tokenizer, o: Pick<ChatTemplateOptions, "chatTemplate" | "tools"> = {}): string {
  const t = tok.chatTemplates;
  if (t !== null && typeof t === "object") {
    if (o.chatTemplate !== undefined && Object.hasOwn(t, o.chatTemplate)) return t[o.chatTemplate];
    if (o.chatTemplate !== undefined) return o.chatTemplate;
    if (o.tools !== undefined && o.tools !== null && Object.hasOwn(t, "tool_use")) return t.tool_use;
    if (Object.hasOwn(t, "default")) return t.default;
    throw new FathomError(OP, `the tokenizer has named chat templates (${Object.keys(t).join(", ")}) but none called "default"; pass chatTemplate: NAME`);
  }
  if (o.chatTemplate !== undefined) return o.chatTemplate;
  return t ?? FALLBACK_CHAT_TEMPLATE;
}

/** Renders `messages` to the prompt text. Tokenizer.applyChatTemplate calls this (and encodes when tokenize is set). */
export function applyChatTemplate(tok: Tokenizer, messages: readonly ChatMessage[], o: ChatTemplateOptions = {}): string {
  if (!Array.isArray(messages)) throw new FathomError(OP, "messages must be a list of {role, content}");
  messages.forEach((m, i) => {
    if (!m || typeof m !== "object" || typeof m.role !== "string") throw new FathomError(OP, `messages[${i}] has no string "role"`);
  });
  const { addGenerationPrompt = false, continueFinalMessage = false, tools, documents, tokenize: _t, chatTemplate: _c, ...extra } = o;
  if (addGenerationPrompt && continueFinalMessage) throw new FathomError(OP, "addGenerationPrompt and continueFinalMessage cannot both be set");
  const template = selectChatTemplate(tok, o);
  const special: Record<string, unknown> = {};
  if (tok.bosToken !== null) special.bos_token = tok.bosToken;
  if (tok.eosToken !== null) special.eos_token = tok.eosToken;
  if (tok.unkToken !== null) special.unk_token = tok.unkToken;
  if (tok.padToken !== null) special.pad_token = tok.padToken;
  const additional = tok.tokenizerConfig.additional_special_tokens;
  if (Array.isArray(additional)) special.additional_special_tokens = additional.map((a: unknown) => (typeof a === "string" ? a : (a as { content: string }).content));
  const rendered = renderChatTemplate(template, {
    ...special,
    ...extra,
    // A JSON copy: keys set to undefined disappear, as they would in Python ('tool_calls' in message is false).
    messages: JSON.parse(JSON.stringify(messages)),
    tools: tools ?? null,
    documents: documents ?? null,
    add_generation_prompt: addGenerationPrompt,
  });
  if (!continueFinalMessage) return rendered;
  // transformers: cut the text right after the final message's content, so the model continues it.
  const last = messages[messages.length - 1];
  if (!last || typeof last.content !== "string") throw new FathomError(OP, "continueFinalMessage needs a final message with string content");
  const final = last.content.trim();
  const at = rendered.lastIndexOf(final);
  if (at < 0) throw new FathomError(OP, "continueFinalMessage: the final message does not appear in the rendered chat");
  return rendered.slice(0, at + final.length);
}
