// The HTTP layer of `fathom serve` under hostile input: 500 seeded malformed or hostile requests (bad JSON, wrong
// types, huge numbers, huge bodies, unknown models, bad auth, partial bodies, invalid UTF-8, deep nesting, ...) all get
// a 4xx with an OpenAI-style error object and the server stays healthy; API keys; CORS; the metrics text format.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { request } from "node:http";
import { connect } from "node:net";
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { checkBearer, keyDigest } from "../src/serve/http_util.js";
import { metric, startTiny, writeTinyModel, type TinyServed } from "./serve_helpers.js";

const KEY = "sk-test-0123456789";
const AUTH = { Authorization: `Bearer ${KEY}` };
let s: TinyServed;
before(async () => {
  s = await startTiny({ apiKey: KEY, cors: { origins: ["http://allowed.example"] }, maxBodyBytes: 64 * 1024, bodyTimeoutMs: 1500, maxBatch: 4, maxQueue: 64 });
});
after(async () => { await s?.close(); });

interface Raw { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** A request with exact bytes (fetch cannot send invalid UTF-8 or lie about lengths). */
function raw(method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(`${s.url}${path}`, { method, headers: { ...AUTH, "Content-Type": "application/json", ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Sends headers and part of a body, then stalls: the server must answer 408 on its own and close. */
function slowloris(declared: number, sent: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(s.url);
    const sock = connect(Number(u.port), u.hostname);
    let data = "";
    sock.on("data", (c) => { data += c.toString(); });
    sock.on("close", () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
    sock.on("error", reject);
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${declared}\r\n\r\n${sent}`);
  });
}

/** mulberry32: a seeded generator so the 500 requests are the same on every run. */
function rng(seed: number) {
  return () => { seed |= 0; seed = (seed + 0x6d2b79f5) | 0; let t = Math.imul(seed ^ (seed >>> 15), 1 | seed); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

const goodChat = () => ({ model: "tiny", messages: [{ role: "user", content: "hi" }], max_tokens: 2 });
const goodCompletion = () => ({ model: "tiny", prompt: "hi", max_tokens: 2 });

/** One hostile request, chosen by `r`. Each returns [description, method, path, body bytes, headers]. */
function hostile(r: () => number): [string, string, string, Buffer | string | undefined, Record<string, string>] {
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)];
  const endpoint = pick(["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]);
  const base = (): Record<string, unknown> => endpoint === "/v1/chat/completions" ? goodChat() : endpoint === "/v1/completions" ? goodCompletion() : { model: "tiny", input: "hi" };
  const kind = Math.floor(r() * 16);
  switch (kind) {
    case 0: { // broken JSON
      const txt = JSON.stringify(base());
      return ["truncated JSON", "POST", endpoint, txt.slice(0, Math.floor(r() * (txt.length - 1))), {}];
    }
    case 1: return ["not JSON", "POST", endpoint, pick(["{'a': 1}", "undefined", "{\"model\": tiny}", "[1,2", "\u0000\u0001", "<xml/>", "{\"a\":1}}"]), {}];
    case 2: { // a field of the wrong type (values that are invalid for that field)
      const b = base();
      const common: Record<string, unknown[]> = { model: [null, 42, [], {}, ""], max_tokens: ["5", 1.5, 0, -1, [], true] };
      const chat: Record<string, unknown[]> = { ...common, messages: [null, "hi", {}, 5, [[]]], n: [0, 1.5, "2", -1], temperature: [-1, "hot", 2.5, []], top_p: [1.5, -0.1, "x"],
        stop: [5, [1, 2], { a: 1 }, [""]], seed: [1.5, "7", 1e300], logit_bias: ["x", [1], { "1": "up" }], stream: ["yes", 1, {}], tools: ["x", [1], {}],
        logprobs: ["true", 1], top_logprobs: [-1, 21, "3"], presence_penalty: [3, -3, "0"], stream_options: [5, "x"] };
      const completion: Record<string, unknown[]> = { ...common, prompt: [null, 5, {}, [[]], [true], [-1], [1.5]], suffix: [5, [], {}], echo: ["no", 0], logprobs: [6, -1, true, "1"], best_of: [0, "2"] };
      const embedding: Record<string, unknown[]> = { model: common.model, input: [null, 5, {}, [], [[]], [-2], [{}]], encoding_format: ["int8", 5], dimensions: [0, "64", 1.5] };
      const table = endpoint === "/v1/chat/completions" ? chat : endpoint === "/v1/completions" ? completion : embedding;
      const field = pick(Object.keys(table));
      b[field] = pick(table[field]);
      return [`wrong type for ${field}`, "POST", endpoint, JSON.stringify(b), {}];
    }
    case 3: { // huge or out-of-range numbers
      const b = base();
      if (endpoint === "/v1/embeddings") b.dimensions = pick([1e9, 2 ** 64, 3.5, 100]);
      else b[pick(["max_tokens", "n", "temperature", "top_p", "presence_penalty", "frequency_penalty"])] = pick([1e300, -5, 1e9, 2 ** 64, 3.5, 10_000]);
      if (r() < 0.2) b.seed = pick([1e300, 2 ** 64, 3.5]);
      return ["out-of-range number", "POST", endpoint, JSON.stringify(b), {}];
    }
    case 4: { const b = base(); b.model = pick(["gpt-4", "", "../../etc/passwd", "tiny ", "TINY"]); return ["unknown model", "POST", endpoint, JSON.stringify(b), {}]; }
    case 5: return ["bad auth", "POST", endpoint, JSON.stringify(base()), { Authorization: pick(["Bearer nope", "Bearer ", "Basic abc", KEY, `Bearer ${KEY}x`, `bearer ${KEY.slice(1)}`]) }];
    case 6: { // invalid UTF-8 inside a string
      const txt = Buffer.from(JSON.stringify(base()));
      const at = txt.indexOf("hi");
      const bad = pick([Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80])]);
      return ["invalid UTF-8", "POST", endpoint, Buffer.concat([txt.subarray(0, at), bad, txt.subarray(at)]), {}];
    }
    case 7: { const b = base(); b.padding = "x".repeat(70 * 1024 + Math.floor(r() * 10000)); return ["body over the limit", "POST", endpoint, JSON.stringify(b), {}]; }
    case 8: { // deep nesting
      const d = 70 + Math.floor(r() * 5000);
      return ["deep nesting", "POST", endpoint, "[".repeat(d) + "]".repeat(d), {}];
    }
    case 9: return ["not an object", "POST", endpoint, pick(["[]", "null", "1", "\"x\"", "true", ""]), {}];
    case 10: return ["wrong method", pick(["GET", "PUT", "DELETE", "PATCH"]), endpoint, undefined, {}];
    case 11: return ["unknown path", pick(["GET", "POST"]), pick(["/v1/chat", "/v2/models", "/admin", "/..%2f", "/v1/models/nope", "/v1/models/%E0%A4%A", "/v1/completions/x"]), "{}", {}];
    case 12: { // bad messages
      const b = goodChat() as Record<string, unknown>;
      b.messages = pick<unknown>([[], [{ role: "wizard", content: "x" }], [{ content: "x" }], [{ role: "user", content: 5 }], "hi", [null],
        [{ role: "user", content: [{ type: "image_url", image_url: "x" }] }], [{ role: "assistant", tool_calls: [{ function: {} }] }]]);
      return ["bad messages", "POST", "/v1/chat/completions", JSON.stringify(b), {}];
    }
    case 13: { // token ids outside the vocabulary, bad logit_bias keys
      const b = goodCompletion() as Record<string, unknown>;
      if (r() < 0.5) b.prompt = [1, 2, 100000 + Math.floor(r() * 1e6)]; else b.logit_bias = pick([{ "999999": 5 }, { abc: 1 }, { "1": 500 }, { "-1": 1 }]);
      return ["bad token ids", "POST", "/v1/completions", JSON.stringify(b), {}];
    }
    case 14: { // semantic misuse
      const c = pick(["top_logprobs without logprobs", "too many stops", "n too large", "echo+logprobs", "prompt too long", "bad tools", "bad response_format"]);
      const b: Record<string, unknown> = c === "echo+logprobs" ? { ...goodCompletion(), echo: true, logprobs: 1 } : c === "prompt too long" ? { ...goodCompletion(), prompt: "the ".repeat(3000) } : goodChat();
      if (c === "top_logprobs without logprobs") b.top_logprobs = 2;
      if (c === "too many stops") b.stop = ["a", "b", "c", "d", "e"];
      if (c === "n too large") b.n = 1000;
      if (c === "bad tools") b.tools = [{ type: "function", function: { name: "has spaces!" } }];
      if (c === "bad response_format") b.response_format = { type: "json_schema" };
      return [c, "POST", c === "echo+logprobs" || c === "prompt too long" ? "/v1/completions" : "/v1/chat/completions", JSON.stringify(b), {}];
    }
    default: return ["missing auth", "POST", endpoint, JSON.stringify(base()), { Authorization: "" }];
  }
}

test("500 seeded malformed or hostile requests all get a 4xx error object; the server stays up and still answers", async () => {
  const r = rng(20261128);
  const cases = Array.from({ length: 490 }, () => hostile(r));
  const kinds = new Map<string, number>();
  for (let i = 0; i < cases.length; i += 16) {
    await Promise.all(cases.slice(i, i + 16).map(async ([what, method, path, body, headers]) => {
      const res = await raw(method, path, body, headers);
      assert.ok(res.status >= 400 && res.status < 500, `${what}: ${method} ${path} → ${res.status} ${res.body.slice(0, 200)}`);
      if (res.body) {
        const e = JSON.parse(res.body).error;
        assert.equal(typeof e.message, "string", what);
        assert.equal(typeof e.type, "string", what);
        assert.ok("param" in e && "code" in e, what);
      }
      kinds.set(what.split(" ")[0], (kinds.get(what.split(" ")[0]) ?? 0) + 1);
    }));
  }
  // 10 slowloris requests: partial bodies that never finish get 408 when the body timeout runs out.
  const slow = await Promise.all(Array.from({ length: 10 }, (_, i) => slowloris(200 + i, "{\"model\": \"ti")));
  assert.deepEqual(slow, new Array(10).fill(408));
  assert.ok(kinds.size >= 12, `the generator covers many kinds (${[...kinds.keys()].join(", ")})`);
  const health = await fetch(`${s.url}/health`);
  assert.equal(health.status, 200);
  const ok = await raw("POST", "/v1/chat/completions", JSON.stringify(goodChat()));
  assert.equal(ok.status, 200, ok.body);
  assert.equal(JSON.parse(ok.body).object, "chat.completion");
  assert.equal(await metric(s.url, "fathom_active_sequences", AUTH), 0);
});

test("API keys: Bearer required on /v1 and /metrics (401 otherwise); /health and / are open; digests compare in constant time", async () => {
  assert.equal((await fetch(`${s.url}/v1/models`)).status, 401);
  const wrong = await fetch(`${s.url}/v1/models`, { headers: { Authorization: "Bearer wrong" } });
  assert.equal(wrong.status, 401);
  assert.equal((await wrong.json()).error.code, "invalid_api_key");
  assert.equal((await fetch(`${s.url}/v1/models`, { headers: AUTH })).status, 200);
  assert.equal((await fetch(`${s.url}/metrics`)).status, 401);
  assert.equal((await fetch(`${s.url}/health`)).status, 200);
  assert.equal((await fetch(`${s.url}/`)).status, 200);
  const d = keyDigest(KEY);
  assert.equal(checkBearer(`Bearer ${KEY}`, d), true);
  assert.equal(checkBearer(`Bearer ${KEY}${"x".repeat(1000)}`, d), false);   // any length: digests are equal-length
  assert.equal(checkBearer(undefined, d), false);
  assert.equal(checkBearer(KEY, d), false);
});

test("CORS: off unless the origin is allowed; preflight answers with the allowed methods and headers", async () => {
  const ok = await fetch(`${s.url}/v1/models`, { headers: { ...AUTH, Origin: "http://allowed.example" } });
  assert.equal(ok.headers.get("access-control-allow-origin"), "http://allowed.example");
  const other = await fetch(`${s.url}/v1/models`, { headers: { ...AUTH, Origin: "http://evil.example" } });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  const pre = await fetch(`${s.url}/v1/chat/completions`, { method: "OPTIONS", headers: { Origin: "http://allowed.example", "Access-Control-Request-Method": "POST" } });
  assert.equal(pre.status, 204);
  assert.match(pre.headers.get("access-control-allow-headers") ?? "", /Authorization/);
  // the headers a browser asks for (the openai client adds X-Stainless-*) are allowed when they are plain names
  const asked = "authorization,content-type,x-stainless-os,x-stainless-retry-count";
  const preClient = await fetch(`${s.url}/v1/chat/completions`, { method: "OPTIONS", headers: { Origin: "http://allowed.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": asked } });
  assert.equal(preClient.headers.get("access-control-allow-headers"), asked);
  const preOdd = await fetch(`${s.url}/v1/chat/completions`, { method: "OPTIONS", headers: { Origin: "http://allowed.example", "Access-Control-Request-Headers": "x-a; evil" } });
  assert.equal(preOdd.headers.get("access-control-allow-headers"), "Authorization, Content-Type");
  const preEvil = await fetch(`${s.url}/v1/chat/completions`, { method: "OPTIONS", headers: { Origin: "http://evil.example" } });
  assert.equal(preEvil.headers.get("access-control-allow-origin"), null);
});

test("the default server (no CORS option) sends no CORS headers, and binds to 127.0.0.1", async () => {
  const d = await startTiny({ maxBatch: 1 });
  try {
    assert.match(d.url, /^http:\/\/127\.0\.0\.1:/);
    const r = await fetch(`${d.url}/v1/models`, { headers: { Origin: "http://allowed.example" } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("access-control-allow-origin"), null);
  } finally { await d.close(); }
});

test("/metrics is Prometheus text: HELP/TYPE per family, counters for requests and tokens, TTFT histogram, engine gauges", async () => {
  await raw("POST", "/v1/completions", JSON.stringify({ model: "tiny", prompt: "hello", max_tokens: 3, temperature: 0, logit_bias: { [s.ids.eos]: -100 } }));
  const res = await fetch(`${s.url}/metrics`, { headers: AUTH });
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const families = new Map<string, string>();
  for (const line of text.trimEnd().split("\n")) {
    const t = /^# TYPE (\w+) (counter|gauge|histogram)$/.exec(line);
    if (t) { families.set(t[1], t[2]); continue; }
    if (line.startsWith("# HELP ")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (-?[0-9.e+-]+|NaN|\+Inf)$/.exec(line);
    assert.ok(m, `sample line: ${line}`);
    const fam = m[1].replace(/_(bucket|sum|count)$/, "");
    assert.ok(families.has(m[1]) || families.has(fam), `sample ${m[1]} has a TYPE line`);
  }
  for (const f of ["fathom_requests_total", "fathom_prompt_tokens_total", "fathom_generation_tokens_total"]) assert.equal(families.get(f), "counter", f);
  assert.equal(families.get("fathom_time_to_first_token_seconds"), "histogram");
  for (const f of ["fathom_queue_depth", "fathom_kv_cache_usage_ratio", "fathom_generation_tokens_per_second", "fathom_active_sequences"]) assert.equal(families.get(f), "gauge", f);
  assert.match(text, /fathom_requests_total\{endpoint="\/v1\/completions",status="200"\} [1-9]/);
  assert.ok(await metric(s.url, "fathom_generation_tokens_total", AUTH) >= 3);
  assert.ok(await metric(s.url, "fathom_time_to_first_token_seconds_count", AUTH) >= 1);
  assert.ok(await metric(s.url, "fathom_kv_cache_tokens_capacity", AUTH) > 0);
});

test("a POST body must be JSON: text/plain (a cross-site form needs no preflight) gets 415", async () => {
  const r = await raw("POST", "/v1/completions", JSON.stringify({ model: "tiny", prompt: "x", max_tokens: 1 }), { "Content-Type": "text/plain;charset=UTF-8" });
  assert.equal(r.status, 415);
  assert.equal(JSON.parse(r.body).error.code, "unsupported_media_type");
  const ok = await raw("POST", "/v1/completions", JSON.stringify({ model: "tiny", prompt: "x", max_tokens: 1 }), { "Content-Type": "application/json; charset=utf-8" });
  assert.equal(ok.status, 200);
});

test("prompt + max_tokens beyond the context length is a 400 context_length_exceeded (as vLLM and OpenAI answer)", async () => {
  const prompt = Array.from({ length: 1000 }, (_, i) => 3 + (i % 200));   // startTiny's context is 1024
  const r = await raw("POST", "/v1/completions", JSON.stringify({ model: "tiny", prompt, max_tokens: 100 }));
  assert.equal(r.status, 400);
  assert.equal(JSON.parse(r.body).error.code, "context_length_exceeded");
  const ok = await raw("POST", "/v1/completions", JSON.stringify({ model: "tiny", prompt, max_tokens: 24 }));
  assert.equal(ok.status, 200, ok.body);
});

test("--max-queue 0: requests take free slots, only waiting ones get 429", async () => {
  const q = await startTiny({ maxBatch: 2, maxQueue: 0 });
  try {
    const body = JSON.stringify({ model: "tiny", prompt: "x", max_tokens: 2, n: 2 });
    const one = await fetch(`${q.url}/v1/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    assert.equal(one.status, 200, await one.clone().text());
    assert.equal((await one.json()).choices.length, 2);
  } finally { await q.close(); }
});

test("a full queue answers 429 with an OpenAI error object", async () => {
  const q = await startTiny({ maxBatch: 1, maxQueue: 1 });
  try {
    const body = JSON.stringify({ model: "tiny", prompt: "x", max_tokens: 200, logit_bias: { [q.ids.eos]: -100 } });
    const res = await Promise.all(Array.from({ length: 6 }, () => fetch(`${q.url}/v1/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body })));
    const statuses = res.map((r) => r.status).sort();
    assert.ok(statuses.includes(429), `statuses ${statuses}`);
    assert.ok(statuses.includes(200), `statuses ${statuses}`);
    const busy = res.find((r) => r.status === 429)!;
    assert.equal((await busy.json()).error.type, "rate_limit_error");
    await Promise.all(res.map((r) => r.arrayBuffer().catch(() => null)));
  } finally { await q.close(); }
});

test("fathom serve (the command): starts on a free port, answers, refuses a bad --cors, and stops on SIGTERM", async () => {
  const { dir } = writeTinyModel();
  try {
    const bad = spawn(process.execPath, ["--import", "tsx", "src/cli/run.ts", "serve", "-m", dir, "--cors", "not an origin"], { stdio: ["ignore", "ignore", "pipe"] });
    let badErr = "";
    bad.stderr.on("data", (c) => { badErr += c; });
    assert.equal(await new Promise((r) => bad.on("exit", r)), 1);
    assert.match(badErr, /is not an origin/);

    const p = spawn(process.execPath, ["--import", "tsx", "src/cli/run.ts", "serve", "-m", dir, "--port", "0", "--max-batch", "2", "--api-key", "k1"], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    const url = await new Promise<string>((resolve, reject) => {
      p.stderr.on("data", (c) => { err += c; const m = / on (http:\/\/127\.0\.0\.1:\d+)/.exec(err); if (m) resolve(m[1]); });
      p.on("exit", () => reject(new Error(`serve exited: ${err}`)));
    });
    const name = dir.split("/").pop();
    try {
      const r = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { Authorization: "Bearer k1", "Content-Type": "application/json" }, body: JSON.stringify({ model: name, messages: [{ role: "user", content: "hi" }], max_tokens: 3 }) });
      assert.equal(r.status, 200);
      assert.equal((await r.json()).choices[0].message.role, "assistant");
      assert.equal((await fetch(`${url}/v1/models`)).status, 401);
    } finally { p.kill("SIGTERM"); }
    assert.equal(await new Promise((res) => p.on("exit", res)), 0);
    assert.match(err, /stopping/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test("fathom bench server --synthetic tiny --json: the result shape (not timing)", async () => {
  const p = spawn(process.execPath, ["--import", "tsx", "src/cli/run.ts", "bench", "server", "--synthetic", "tiny", "--concurrency", "1,3",
    "--max-tokens", "4", "--prompt-tokens", "5", "--requests", "1", "--json"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  p.stdout.on("data", (c) => { out += c; });
  p.stderr.on("data", (c) => { err += c; });
  assert.equal(await new Promise((r) => p.on("exit", r)), 0, err);
  const j = JSON.parse(out);
  assert.equal(j.max_tokens, 4);
  assert.equal(j.prompt_tokens, 5);
  assert.deepEqual(j.results.map((r: { concurrency: number }) => r.concurrency), [1, 3]);
  for (const row of j.results) {
    assert.deepEqual(Object.keys(row).sort(), ["concurrency", "tokens_per_s", "ttft_p50_ms", "ttft_p99_ms"]);
    for (const k of ["tokens_per_s", "ttft_p50_ms", "ttft_p99_ms"]) assert.ok(typeof row[k] === "number" && row[k] > 0, `${k} = ${row[k]}`);
    assert.ok(row.ttft_p99_ms >= row.ttft_p50_ms);
  }
});
