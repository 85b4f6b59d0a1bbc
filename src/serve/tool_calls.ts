// DeepSeek tool calls, as the model writes them, parsed back into OpenAI's `tool_calls`.
//
// DeepSeek-V3/R1 (official chat template):
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>
//   \n<｜tool▁call▁begin｜>...<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>
// DeepSeek-V3.1 drops the type and the fences: <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>.
// Both are accepted. ToolCallStream splits a growing text into plain content and finished calls as they complete.
import { randomBytes } from "node:crypto";

export const TOOL_CALLS_BEGIN = "<｜tool▁calls▁begin｜>";
export const TOOL_CALLS_END = "<｜tool▁calls▁end｜>";
export const TOOL_CALL_BEGIN = "<｜tool▁call▁begin｜>";
export const TOOL_CALL_END = "<｜tool▁call▁end｜>";
export const TOOL_SEP = "<｜tool▁sep｜>";
/** Every marker of the format (token texts the decoder must keep even when the tokenizer calls them special). */
export const TOOL_MARKERS: readonly string[] = [TOOL_CALLS_BEGIN, TOOL_CALLS_END, TOOL_CALL_BEGIN, TOOL_CALL_END, TOOL_SEP];

export interface OpenAIToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export const newToolCallId = () => `call_${randomBytes(12).toString("hex")}`;

/** One call's text between <｜tool▁call▁begin｜> and <｜tool▁call▁end｜> → name and JSON arguments text; null if it has no separator. */
export function parseToolCall(inner: string): { name: string; arguments: string } | null {
  const sep = inner.indexOf(TOOL_SEP);
  if (sep < 0) return null;
  const before = inner.slice(0, sep).trim(), after = inner.slice(sep + TOOL_SEP.length);
  const fenced = /^([^\n]*)\n```(?:json)?[ \t]*\n([\s\S]*?)\n?```\s*$/.exec(after);
  if (fenced) return { name: fenced[1].trim(), arguments: fenced[2].trim() };   // V3/R1: type<sep>name + fenced JSON
  return { name: before, arguments: after.trim() };                             // V3.1: name<sep>args
}

/** The whole text of an answer → content before the calls and the calls (empty when there are none). */
export function parseToolCalls(text: string): { content: string; toolCalls: OpenAIToolCall[] } {
  const s = new ToolCallStream();
  const content = s.push(text).content + s.finish().content;
  return { content, toolCalls: s.calls };
}

/**
 * Incremental parser: push text as it is generated; it returns the content that is certainly not part of a marker and
 * the calls completed by this text. `done` turns true at <｜tool▁calls▁end｜> (generation can stop there).
 */
export class ToolCallStream {
  readonly calls: OpenAIToolCall[] = [];
  done = false;
  private inCalls = false;
  private buf = "";

  push(text: string): { content: string; calls: OpenAIToolCall[] } {
    if (this.done) return { content: "", calls: [] };
    this.buf += text;
    let content = "";
    if (!this.inCalls) {
      const at = this.buf.indexOf(TOOL_CALLS_BEGIN);
      if (at < 0) {
        // Hold back a tail that could be the start of the marker.
        const keep = partialSuffix(this.buf, TOOL_CALLS_BEGIN);
        content = this.buf.slice(0, this.buf.length - keep);
        this.buf = this.buf.slice(this.buf.length - keep);
        return { content, calls: [] };
      }
      content = this.buf.slice(0, at);
      this.buf = this.buf.slice(at + TOOL_CALLS_BEGIN.length);
      this.inCalls = true;
    }
    const calls: OpenAIToolCall[] = [];
    for (;;) {
      const begin = this.buf.indexOf(TOOL_CALL_BEGIN);
      const endAll = this.buf.indexOf(TOOL_CALLS_END);
      if (endAll >= 0 && (begin < 0 || endAll < begin)) { this.done = true; this.buf = ""; break; }
      if (begin < 0) break;
      const end = this.buf.indexOf(TOOL_CALL_END, begin);
      if (end < 0) break;
      const parsed = parseToolCall(this.buf.slice(begin + TOOL_CALL_BEGIN.length, end));
      if (parsed) {
        const call: OpenAIToolCall = { id: newToolCallId(), type: "function", function: parsed };
        this.calls.push(call);
        calls.push(call);
      }
      this.buf = this.buf.slice(end + TOOL_CALL_END.length);
    }
    return { content, calls };
  }

  /** The end of generation: content held back (outside a call section) is released; an unfinished call is dropped. */
  finish(): { content: string } {
    const content = this.inCalls ? "" : this.buf;
    this.buf = "";
    return { content };
  }
}

/** Length of the longest suffix of `s` that is a proper prefix of `marker`. */
export function partialSuffix(s: string, marker: string): number {
  for (let k = Math.min(s.length, marker.length - 1); k > 0; k--) if (s.endsWith(marker.slice(0, k))) return k;
  return 0;
}

/**
 * The system text that describes the tools when the chat template does not render `tools` itself (DeepSeek-V3's
 * official template does not): the functions as JSON schemas and the exact call format.
 */
export function toolsSystemPrompt(tools: readonly { function: { name: string; description?: string | null; parameters?: unknown } }[]): string {
  const lines = ["## Tools", "", "You have access to the following tools:", ""];
  for (const t of tools) {
    lines.push(`### ${t.function.name}`);
    if (t.function.description) lines.push(`Description: ${t.function.description}`);
    lines.push(`Parameters: ${JSON.stringify(t.function.parameters ?? { type: "object", properties: {} })}`, "");
  }
  lines.push("IMPORTANT: ALWAYS adhere to this exact format for tool use:",
    `${TOOL_CALLS_BEGIN}${TOOL_CALL_BEGIN}function${TOOL_SEP}tool_call_name\n\`\`\`json\n{"arg": "value"}\n\`\`\`${TOOL_CALL_END}${TOOL_CALLS_END}`,
    "", "Where \"tool_call_name\" must be one of the tools above and the arguments must be valid JSON. Several calls go one after the other, each in its own block.");
  return lines.join("\n");
}
