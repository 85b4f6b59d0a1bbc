// The text side of `fathom serve` as units: DeepSeek tool-call parsing (whole and streamed in every split) and stop
// strings held back across chunks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseToolCalls, parseToolCall, ToolCallStream, TOOL_CALLS_BEGIN as B, TOOL_CALLS_END as E, TOOL_CALL_BEGIN as CB, TOOL_CALL_END as CE, TOOL_SEP as SEP } from "../src/serve/tool_calls.js";
import { StopFilter } from "../src/serve/generation.js";

const v3 = (name: string, args: string) => `${CB}function${SEP}${name}\n\`\`\`json\n${args}\n\`\`\`${CE}`;

test("DeepSeek-V3 tool calls parse into OpenAI tool_calls: one, several, with leading content, and the V3.1 form", () => {
  const one = parseToolCalls(`${B}${v3("get_weather", "{\"city\": \"Paris\"}")}${E}`);
  assert.equal(one.content, "");
  assert.equal(one.toolCalls.length, 1);
  assert.deepEqual(one.toolCalls[0].function, { name: "get_weather", arguments: "{\"city\": \"Paris\"}" });
  assert.equal(one.toolCalls[0].type, "function");
  const two = parseToolCalls(`Let me check.${B}${v3("a", "{}")}\n${v3("b_2", "{\"x\": [1, 2]}")}${E}<｜end▁of▁sentence｜>`);
  assert.equal(two.content, "Let me check.");
  assert.deepEqual(two.toolCalls.map((c) => c.function), [{ name: "a", arguments: "{}" }, { name: "b_2", arguments: "{\"x\": [1, 2]}" }]);
  assert.notEqual(two.toolCalls[0].id, two.toolCalls[1].id);
  assert.deepEqual(parseToolCall(`get_time${SEP}{"tz": "UTC"}`), { name: "get_time", arguments: "{\"tz\": \"UTC\"}" });   // V3.1
  assert.equal(parseToolCalls("no calls here, just <｜tool text").content, "no calls here, just <｜tool text");
  assert.equal(parseToolCalls("plain").toolCalls.length, 0);
  // An unfinished call (generation cut by max_tokens) is dropped, not half-reported.
  assert.equal(parseToolCalls(`${B}${CB}function${SEP}x\n\`\`\`json\n{"a":`).toolCalls.length, 0);
});

test("the streaming tool-call parser gives the same content and calls for every way of splitting the text", () => {
  const text = `Sure: ${B}${v3("f", "{\"q\": \"a<b\"}")}\n${v3("g", "[]")}${E}ignored`;
  const want = parseToolCalls(text);
  for (let i = 0; i <= text.length; i++) {
    for (const j of [i, Math.min(text.length, i + 7)]) {
      const s = new ToolCallStream();
      let content = "";
      const calls = [];
      for (const part of [text.slice(0, i), text.slice(i, j), text.slice(j)]) { const r = s.push(part); content += r.content; calls.push(...r.calls); }
      content += s.finish().content;
      assert.equal(content, "Sure: ", `split ${i}/${j}`);
      assert.deepEqual(calls.map((c) => c.function), want.toolCalls.map((c) => c.function), `split ${i}/${j}`);
      assert.equal(s.done, true);
    }
  }
});

test("stop strings: the text before the first stop string, for every split of the stream; nothing of the stop string leaks", () => {
  const text = "Hello, world! END and more END";
  for (const stops of [["END"], ["world", "END"], ["!", "xyz"], ["and more END"]]) {
    const first = Math.min(...stops.map((st) => text.indexOf(st)).filter((i) => i >= 0));
    for (let i = 0; i <= text.length; i++) {
      const f = new StopFilter(stops);
      const a = f.push(text.slice(0, i));
      let out = a.text, stopped = a.stopped;
      if (!stopped) { const b = f.push(text.slice(i)); out += b.text; stopped = b.stopped; }
      if (!stopped) out += f.flush();
      assert.equal(out, text.slice(0, first), `${stops} split ${i}`);
      assert.equal(stopped, true);
    }
  }
  const none = new StopFilter(["zzz"]);
  assert.equal(none.push("abcdef").text + none.flush(), "abcdef");
});
