// `fathom serve` through the official `openai` npm client against a running server (real engine in its worker):
// chat, streaming, completions with fill-in-the-middle, models, embeddings, n, stop, logprobs, tool calls, 32
// concurrent streams, and a client that disconnects mid-stream. Greedy answers are checked against the model run
// directly (generateGreedy), embeddings against mean-pooled hidden states computed here.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import * as F from "../src/index.js";
import { buildFimPrompt } from "../src/tokenizers/fim.js";
import { metric, startTiny, type TinyServed } from "./serve_helpers.js";

let s: TinyServed;
let client: OpenAI;
before(async () => {
  s = await startTiny({ maxBatch: 4, maxQueue: 64 });
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(async () => { await s?.close(); });

/** What the model itself writes greedily after `ids` (EOS ends it), decoded as the server decodes it. */
function reference(ids: number[], max: number): { text: string; ids: number[]; logprobs: number[] } {
  const r = s.model.generateGreedy(ids, max, [s.ids.eos]);
  const kept = r.tokenIds.filter((t) => t !== s.ids.eos);
  return { text: s.tok.decode(kept, { skipSpecialTokens: true }), ids: r.tokenIds, logprobs: r.logprobs };
}
const chatIds = (messages: F.ChatMessage[]) => s.tok.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }) as number[];

test("GET /v1/models lists the served model", async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ["tiny"]);
  assert.equal((await client.models.retrieve("tiny")).id, "tiny");
});

test("chat: the greedy answer is the model's own greedy continuation of the chat-template prompt", async () => {
  const messages = [{ role: "system" as const, content: "Be brief." }, { role: "user" as const, content: "hello there, the world" }];
  const r = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 12, temperature: 0 });
  const want = reference(chatIds(messages), 12);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(r.choices[0].message.content, want.text);
  assert.equal(r.choices[0].finish_reason, want.ids.includes(s.ids.eos) ? "stop" : "length");
  assert.equal(r.usage!.prompt_tokens, chatIds(messages).length);
  assert.equal(r.usage!.completion_tokens, want.ids.length);
});

test("chat streaming: the deltas add up to the non-streamed answer; usage comes last", async () => {
  const messages = [{ role: "user" as const, content: "the quick brown fox" }];
  const whole = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 10, temperature: 0 });
  const stream = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = "", finish: string | null = null, usage: OpenAI.CompletionUsage | undefined, role = "";
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    const ch = c.choices[0];
    if (!ch) continue;
    if (ch.delta.role) role = ch.delta.role;
    text += ch.delta.content ?? "";
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  assert.equal(role, "assistant");
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage?.completion_tokens, whole.usage!.completion_tokens);
});

test("completions: text prompt, token-id prompt and fill-in-the-middle through suffix", async () => {
  const r = await client.completions.create({ model: "tiny", prompt: "def add(a, b):", max_tokens: 8, temperature: 0 });
  assert.equal(r.choices[0].text, reference(s.tok.encode("def add(a, b):"), 8).text);
  const ids = [5, 60, 61, 62];
  const r2 = await client.completions.create({ model: "tiny", prompt: ids, max_tokens: 6, temperature: 0 });
  assert.equal(r2.choices[0].text, reference(ids, 6).text);
  const fim = await client.completions.create({ model: "tiny", prompt: "def f(x):\n    ", suffix: "\n    return y", max_tokens: 8, temperature: 0 });
  const fimIds = buildFimPrompt(s.tok, "def f(x):\n    ", "\n    return y").ids;
  assert.equal(fimIds.filter((t) => t === s.ids.fimBegin || t === s.ids.fimHole || t === s.ids.fimEnd).length, 3);
  assert.equal(fim.choices[0].text, reference(fimIds, 8).text);
  assert.equal(fim.usage!.prompt_tokens, fimIds.length);
  const echo = await client.completions.create({ model: "tiny", prompt: "the cat", max_tokens: 3, temperature: 0, echo: true });
  assert.ok(echo.choices[0].text.startsWith("the cat"));
});

test("n = 2 with a seed: two different, reproducible answers", async () => {
  const req = { model: "tiny", messages: [{ role: "user" as const, content: "tell me" }], max_tokens: 12, temperature: 1.5, seed: 7, n: 2 };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert.deepEqual(a.choices.map((c) => c.index), [0, 1]);
  assert.deepEqual(a.choices.map((c) => c.message.content), b.choices.map((c) => c.message.content));
  assert.notEqual(a.choices[0].message.content, a.choices[1].message.content);
  assert.equal(a.usage!.completion_tokens, a.choices.length * 12 - 0 || a.usage!.completion_tokens);
});

test("stop strings: the text ends before the first one, which is never emitted, streaming or not", async () => {
  const prompt = "hello the world";
  const full = reference(s.tok.encode(prompt), 16).text;
  const chars = [...full];
  const stop = chars.slice(4, 6).join("");
  const want = full.slice(0, full.indexOf(stop));
  const r = await client.completions.create({ model: "tiny", prompt, max_tokens: 16, temperature: 0, stop: [stop] });
  assert.equal(r.choices[0].text, want);
  assert.equal(r.choices[0].finish_reason, "stop");
  const st = await client.completions.create({ model: "tiny", prompt, max_tokens: 16, temperature: 0, stop: stop, stream: true });
  let text = "";
  for await (const c of st) text += c.choices[0]?.text ?? "";
  assert.equal(text, want);
});

test("logprobs: chat and completions shapes; values are the model's log-softmax", async () => {
  const messages = [{ role: "user" as const, content: "numbers" }];
  const want = reference(chatIds(messages), 5);
  const r = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 5, temperature: 0, logprobs: true, top_logprobs: 3 });
  const lp = r.choices[0].logprobs!.content!;
  assert.equal(lp.length, want.ids.length);
  lp.forEach((t, i) => {
    assert.ok(Math.abs(t.logprob - want.logprobs[i]) < 1e-3, `token ${i}: ${t.logprob} vs ${want.logprobs[i]}`);
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-6, "greedy: the chosen token is the most likely");
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob && t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob);
    assert.deepEqual(Buffer.from(t.bytes!), Buffer.from(s.tok.tokenBytes(want.ids[i], false) ?? []));
  });
  const c = await client.completions.create({ model: "tiny", prompt: "the", max_tokens: 4, temperature: 0, logprobs: 2 });
  const cl = c.choices[0].logprobs!;
  assert.equal(cl.tokens!.length, 4);
  assert.equal(cl.token_logprobs!.length, 4);
  assert.equal(Object.keys(cl.top_logprobs![0]).length >= 1, true);
  assert.deepEqual(cl.text_offset!.slice(0, 1), [0]);
});

test("embeddings: L2-normalized mean-pooled final hidden states, float and base64", async () => {
  const inputs = ["hello world", "the quick brown fox jumps"];
  const r = await client.embeddings.create({ model: "tiny", input: inputs, encoding_format: "float" });
  assert.equal(r.data.length, 2);
  for (const [i, text] of inputs.entries()) {
    const ids = s.tok.encode(text);
    const h = F.noGrad(() => s.model.hidden(new F.Tensor(Int32Array.from(ids), "i32", [1, ids.length]))).to("f32").contiguous().toArray();
    const D = 64, mean = new Float64Array(D);
    for (let t = 0; t < ids.length; t++) for (let d = 0; d < D; d++) mean[d] += h[t * D + d] / ids.length;
    const norm = Math.hypot(...mean);
    const got = r.data[i].embedding;
    assert.equal(got.length, D);
    got.forEach((v, d) => assert.ok(Math.abs(v - mean[d] / norm) < 1e-4, `input ${i} dim ${d}: ${v} vs ${mean[d] / norm}`));
  }
  assert.equal(r.usage.prompt_tokens, inputs.reduce((a, t) => a + s.tok.encode(t).length, 0));
  // The client asks for base64 by default and decodes it.
  const b = await client.embeddings.create({ model: "tiny", input: "hello world" });
  b.data[0].embedding.forEach((v, d) => assert.ok(Math.abs(v - r.data[0].embedding[d]) < 1e-6));
});

const weatherTool = { type: "function" as const, function: { name: "get_weather", description: "Current weather of a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } };

test("tools: a DeepSeek tool-call block comes back as OpenAI tool_calls (finish_reason tool_calls), streamed or not, and the answer round-trips", async () => {
  // logit_bias forces the one added token that holds a whole DeepSeek tool-call block.
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "weather in Paris?" }];
  const req = { model: "tiny", messages, tools: [weatherTool], logit_bias: { [s.ids.toolCall]: 100 }, max_tokens: 6, temperature: 0 };
  const r = await client.chat.completions.create(req);
  const m = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  assert.equal(m.content, null);
  assert.equal(m.tool_calls!.length, 1);
  const call = m.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
  assert.equal(call.type, "function");
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });
  assert.match(call.id, /^call_/);
  assert.equal(r.usage!.completion_tokens, 1, "generation stops at the end of the tool calls");

  const st = await client.chat.completions.create({ ...req, stream: true });
  const calls: OpenAI.ChatCompletionChunk.Choice.Delta.ToolCall[] = [];
  let finish = "";
  for await (const c of st) { calls.push(...(c.choices[0]?.delta.tool_calls ?? [])); finish = c.choices[0]?.finish_reason ?? finish; }
  assert.equal(finish, "tool_calls");
  assert.equal(calls.length, 1);
  assert.equal(calls[0].index, 0);
  assert.equal(calls[0].function!.name, "get_weather");
  assert.deepEqual(JSON.parse(calls[0].function!.arguments!), { city: "Paris" });

  // The assistant's call and the tool's answer go back in; without the bias the model writes text.
  const follow = await client.chat.completions.create({
    model: "tiny", tools: [weatherTool], max_tokens: 4, temperature: 0,
    messages: [...messages, m as OpenAI.ChatCompletionMessageParam, { role: "tool", tool_call_id: call.id, content: "{\"temp_c\": 18}" }],
  });
  assert.equal(typeof follow.choices[0].message.content, "string");
  // tool_choice "none": the tools are not offered and the block is plain text.
  const none = await client.chat.completions.create({ ...req, tool_choice: "none", max_tokens: 1 });
  assert.equal(none.choices[0].message.tool_calls, undefined);
});

test("32 concurrent streaming clients all complete", async () => {
  const runs = Array.from({ length: 32 }, async (_, i) => {
    const st = await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: `client ${i} says hello` }], max_tokens: 8, temperature: 0.8, seed: i, stream: true, stream_options: { include_usage: true } });
    let finish = "", chunks = 0, tokens = 0;
    for await (const c of st) { chunks++; if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason; if (c.usage) tokens = c.usage.completion_tokens; }
    return { finish, chunks, tokens };
  });
  const results = await Promise.all(runs);
  for (const r of results) {
    assert.ok(r.finish === "length" || r.finish === "stop", JSON.stringify(r));
    assert.ok(r.tokens >= 1 && r.tokens <= 8);
  }
  assert.equal(await metric(s.url, "fathom_active_sequences"), 0);
});

test("a client that disconnects mid-stream frees its slot (the engine stops generating for it)", async () => {
  const before = await metric(s.url, "fathom_generation_tokens_total");
  const ac = new AbortController();
  const st = await client.completions.create({ model: "tiny", prompt: "once upon a time", max_tokens: 900, temperature: 0.9, seed: 1, logit_bias: { [s.ids.eos]: -100 }, stream: true }, { signal: ac.signal });
  let got = 0;
  try { for await (const _ of st) { if (++got === 2) { ac.abort(); break; } } } catch (e) { assert.match((e as Error).name, /Abort/); }
  assert.equal(got, 2);
  let active = 1;
  for (let i = 0; i < 100 && active > 0; i++) { await new Promise((r) => setTimeout(r, 20)); active = await metric(s.url, "fathom_active_sequences"); }
  assert.equal(active, 0, "the sequence was cancelled");
  const generated = (await metric(s.url, "fathom_generation_tokens_total")) - before;
  assert.ok(generated < 900, `generation stopped early (${generated} tokens)`);
  // The slot is usable again.
  const r = await client.completions.create({ model: "tiny", prompt: "again", max_tokens: 2, temperature: 0 });
  assert.equal(r.choices.length, 1);
});
