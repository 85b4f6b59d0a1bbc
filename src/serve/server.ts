// The HTTP side of `fathom serve`: an OpenAI-compatible API on node:http in front of an Engine (which computes in a
// worker thread, so this event loop only parses, tokenizes, streams and never waits on the model).
//
//   POST /v1/chat/completions   chat (SSE streaming, n, stop, sampling knobs, logprobs, DeepSeek tool calls)
//   POST /v1/completions        text completion, fill-in-the-middle through `suffix`
//   POST /v1/embeddings         mean-pooled final hidden states
//   GET  /v1/models             the served model
//   GET  /health, GET /metrics  liveness and Prometheus metrics
//   GET  /                      the chat page
//
// Every failure is an OpenAI-style error object with a 4xx/5xx status; nothing a client sends reaches an uncaught throw.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { FathomError } from "../core/errors.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import { selectChatTemplate, type ChatMessage } from "../tokenizers/chat_template.js";
import { buildFimPrompt } from "../tokenizers/fim.js";
import { ApiError, badRequest } from "./api_error.js";
import { checkBearer, corsHeaders, keyDigest, parseJsonBody, readBody, sendError, sendJson, sseData, startSse, type CorsOptions } from "./http_util.js";
import { Metrics } from "./metrics.js";
import { EngineBusyError, type Engine, type SamplingParams } from "./protocol.js";
import { ChatRequest, CompletionRequest, EmbeddingRequest, validate } from "./schemas.js";
import { SequenceGroup, type SequenceDelta, type SequenceResult, type SequenceSpec, type TokenLogprob } from "./generation.js";
import { toolsSystemPrompt } from "./tool_calls.js";
import { CHAT_PAGE_HTML } from "./chat_page.js";

export interface ServerOptions {
  engine: Engine;
  tokenizer: Tokenizer;
  /** The id clients pass as `model` (default: the engine's modelId). */
  modelId?: string;
  /** Require `Authorization: Bearer <apiKey>` on /v1/* and /metrics. */
  apiKey?: string;
  /** Cross-origin requests: off (null, the default) or the allowed origins. */
  cors?: CorsOptions | null;
  /** Largest request body in bytes (default 4 MiB). */
  maxBodyBytes?: number;
  /** Time allowed to receive a request body (default 10 s). */
  bodyTimeoutMs?: number;
  /** Wall-clock limit of a generation (default 10 min); the answer then ends with finish_reason "length". */
  requestTimeoutMs?: number;
  /** Extra token ids that end generation besides the tokenizer's EOS. */
  stopTokenIds?: number[];
}

const id = (prefix: string) => `${prefix}-${randomBytes(12).toString("hex")}`;
const ENDPOINTS = new Set(["/", "/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings"]);
const POST = new Set(["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]);

export class FathomServer {
  readonly http: Server;
  readonly metrics = new Metrics();
  readonly modelId: string;
  private readonly engine: Engine;
  private readonly tok: Tokenizer;
  private readonly key: Buffer | null;
  private readonly cors: CorsOptions | null;
  private readonly maxBody: number;
  private readonly bodyTimeout: number;
  private readonly requestTimeout: number;
  private readonly stopIds: number[];
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(o: ServerOptions) {
    this.engine = o.engine;
    this.tok = o.tokenizer;
    this.modelId = o.modelId ?? o.engine.info.modelId;
    this.key = o.apiKey ? keyDigest(o.apiKey) : null;
    this.cors = o.cors ?? null;
    this.maxBody = o.maxBodyBytes ?? 4 << 20;
    this.bodyTimeout = o.bodyTimeoutMs ?? 10_000;
    this.requestTimeout = o.requestTimeoutMs ?? 600_000;
    const stop = new Set(o.stopTokenIds ?? []);
    if (this.tok.eosTokenId !== null) stop.add(this.tok.eosTokenId);
    for (const t of ["<|EOT|>", "<｜end▁of▁sentence｜>"]) { const i = this.tok.tokenToId(t); if (i !== null) stop.add(i); }
    this.stopIds = [...stop];
    this.http = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => { this.handle(req, res).catch((e) => this.fail(res, e)); });
    this.http.headersTimeout = Math.max(1000, Math.min(this.bodyTimeout, 60_000));
    this.http.requestTimeout = this.bodyTimeout + 5000;
    this.http.keepAliveTimeout = 5000;
  }

  /** Listens on host:port (port 0: any free port); resolves to the base URL. */
  listen(port = 8080, host = "127.0.0.1"): Promise<string> {
    return new Promise((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(port, host, () => {
        this.http.off("error", reject);
        const a = this.http.address() as AddressInfo;
        resolve(`http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`);
      });
    });
  }

  /** Stops accepting connections and closes the open ones (the engine is the caller's to close). */
  close(): Promise<void> {
    return new Promise((resolve) => { this.http.close(() => resolve()); this.http.closeAllConnections(); });
  }

  private fail(res: ServerResponse, e: unknown): void {
    const err = e instanceof ApiError ? e
      : e instanceof EngineBusyError ? new ApiError(429, `the server is busy (${e.queueDepth} requests waiting); retry later`, "rate_limit_error", null, "queue_full")
      : e instanceof FathomError ? badRequest(e.message)
      : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`);
    if (err.status >= 500) process.stderr.write(`fathom serve: ${(e as Error)?.stack ?? e}\n`);
    if (res.headersSent) {
      if (!res.writableEnded) { sseData(res, err.toJSON()); res.end(); }
      return;
    }
    sendError(res, err, { ...this.corsFor(res), ...(err.status === 413 || err.status === 408 ? { Connection: "close" } : {}) });
  }

  private corsFor(res: ServerResponse): Record<string, string> {
    return corsHeaders(this.cors, (res.req as IncomingMessage).headers.origin);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let path: string;
    try { path = new URL(req.url ?? "/", "http://x").pathname; } catch { throw badRequest("bad request URL"); }
    const endpoint = ENDPOINTS.has(path) ? path : path.startsWith("/v1/models/") ? "/v1/models/{id}" : "other";
    this.metrics.inFlight++;
    res.once("close", () => { this.metrics.inFlight--; this.metrics.request(endpoint, res.statusCode); });
    const cors = this.corsFor(res);
    for (const [k, v] of Object.entries(cors)) res.setHeader(k, v);

    if (req.method === "OPTIONS") {
      if (!Object.keys(cors).length) { res.writeHead(204); res.end(); return; }
      // Allow the headers the browser asks for (the openai client sends X-Stainless-* ones), when they are plain names.
      const asked = req.headers["access-control-request-headers"];
      const allow = typeof asked === "string" && /^[\w-]+(\s*,\s*[\w-]+)*$/.test(asked.trim()) ? asked.trim() : "Authorization, Content-Type";
      res.writeHead(204, { "Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Allow-Headers": allow, "Access-Control-Max-Age": "600",
        Vary: "Origin, Access-Control-Request-Headers" });
      res.end();
      return;
    }
    if (endpoint === "other") throw new ApiError(404, `no route for ${req.method} ${path}`, "invalid_request_error", null, "not_found");
    const want = POST.has(path) ? "POST" : "GET";
    if (req.method !== want && !(want === "GET" && req.method === "HEAD")) {
      res.setHeader("Allow", want);
      throw new ApiError(405, `${path} accepts ${want}, not ${req.method}`, "invalid_request_error", null, "method_not_allowed");
    }
    if (path === "/") { res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache" }); res.end(CHAT_PAGE_HTML); return; }
    if (path === "/health") {
      const failure = this.engine.failure;
      sendJson(res, failure ? 503 : 200, { status: failure ? "error" : "ok", ...(failure ? { message: failure } : {}), model: this.modelId, ...this.engine.stats() });
      return;
    }
    if (this.key && !checkBearer(req.headers.authorization, this.key)) {
      throw new ApiError(401, "missing or wrong API key (send Authorization: Bearer <key>)", "invalid_request_error", null, "invalid_api_key");
    }
    if (path === "/metrics") {
      res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
      res.end(this.metrics.render(this.engine.stats(), this.modelId));
      return;
    }
    if (path === "/v1/models") { sendJson(res, 200, { object: "list", data: [this.modelCard()] }); return; }
    if (endpoint === "/v1/models/{id}") {
      let want: string;
      try { want = decodeURIComponent(path.slice("/v1/models/".length)); } catch { throw badRequest("bad model name in the URL"); }
      if (want !== this.modelId) throw new ApiError(404, `the model '${want}' does not exist (this server has '${this.modelId}')`, "invalid_request_error", "model", "model_not_found");
      sendJson(res, 200, this.modelCard());
      return;
    }
    // JSON only (as FastAPI does since 0.65.2): a cross-site form or text/plain POST cannot start work without a CORS preflight
    if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(req.headers["content-type"] ?? ""))
      throw new ApiError(415, "send the body as JSON (Content-Type: application/json)", "invalid_request_error", null, "unsupported_media_type");
    const body = parseJsonBody(await readBody(req, this.maxBody, this.bodyTimeout));
    if (path === "/v1/chat/completions") return this.chat(req, res, validate(ChatRequest, body));
    if (path === "/v1/completions") return this.completions(req, res, validate(CompletionRequest, body));
    return this.embeddings(res, validate(EmbeddingRequest, body));
  }

  private modelCard() {
    const i = this.engine.info;
    return { id: this.modelId, object: "model", created: this.created, owned_by: "fathom", model_type: i.modelType, context_length: i.contextLength };
  }

  private checkModel(model: string): void {
    if (model !== this.modelId) throw new ApiError(404, `the model '${model}' does not exist (this server has '${this.modelId}')`, "invalid_request_error", "model", "model_not_found");
  }

  /** The engine's sampling parameters for a request (validation already checked the ranges). */
  private params(r: { temperature?: number | null; top_p?: number | null; seed?: number | null; presence_penalty?: number | null; frequency_penalty?: number | null; logit_bias?: Record<string, number> | null },
    maxTokens: number, topLogprobs: number | null, promptLen: number): SamplingParams {
    const ctx = this.engine.info.contextLength;
    if (promptLen >= ctx) throw new ApiError(400, `the prompt has ${promptLen} tokens; this model's context length is ${ctx}`, "invalid_request_error", "messages", "context_length_exceeded");
    if (promptLen === 0) throw badRequest("the prompt is empty", "prompt");
    if (promptLen + maxTokens > ctx) throw new ApiError(400, `the prompt (${promptLen} tokens) plus max_tokens (${maxTokens}) exceed this model's context length of ${ctx}`,
      "invalid_request_error", "max_tokens", "context_length_exceeded");
    let logitBias: Record<number, number> | undefined;
    if (r.logit_bias) {
      logitBias = {};
      for (const [k, v] of Object.entries(r.logit_bias)) {
        const t = Number(k);
        if (t >= this.engine.info.vocabSize) throw badRequest(`logit_bias: token id ${t} is outside the vocabulary (${this.engine.info.vocabSize} tokens)`, "logit_bias");
        logitBias[t] = v;
      }
    }
    const topP = r.top_p ?? 1;
    return {
      maxTokens: Math.max(1, Math.min(maxTokens, ctx - promptLen)),
      temperature: topP === 0 ? 0 : r.temperature ?? 1,
      topP: topP === 0 ? 1 : topP,
      seed: r.seed ?? undefined,
      presencePenalty: r.presence_penalty ?? 0,
      frequencyPenalty: r.frequency_penalty ?? 0,
      logitBias,
      topLogprobs,
      stopTokenIds: this.stopIds,
    };
  }

  private checkIds(ids: number[], param: string): void {
    const v = this.engine.info.vocabSize;
    for (const t of ids) if (t >= v) throw badRequest(`${param}: token id ${t} is outside the vocabulary (${v} tokens)`, param);
  }

  /** n copies of a sequence spec, with seeds seed, seed + 1, ... so that the n answers differ. */
  private copies(spec: SequenceSpec, n: number): SequenceSpec[] {
    return Array.from({ length: n }, (_, i) => ({ ...spec, params: { ...spec.params, seed: spec.params.seed === undefined ? undefined : spec.params.seed + i } }));
  }

  /** Runs the sequences; for streaming, `onDelta` writes chunks. Cancels everything if the client goes away. */
  private async run(req: IncomingMessage, res: ServerResponse, requestId: string, specs: SequenceSpec[], onDelta?: (d: SequenceDelta) => void, onStarted?: () => void): Promise<SequenceResult[]> {
    const t0 = performance.now();
    const group = new SequenceGroup(this.engine, this.tok, requestId, specs, {
      onDelta,
      onFirstToken: () => this.metrics.ttft.observe((performance.now() - t0) / 1000),
      onToken: () => this.metrics.tokensGenerated(1),
    });
    try {
      group.start(this.requestTimeout);   // throws EngineBusyError (429) before anything is written
    } catch (e) {
      if (e instanceof EngineBusyError) throw e;
      throw new ApiError(503, `the engine cannot take requests: ${(e as Error).message}`, "server_error", null, "engine_unavailable");
    }
    onStarted?.();
    const gone = () => { if (!res.writableFinished) group.cancel(); };
    res.once("close", gone);
    req.once("aborted", gone);
    const results = await group.done;
    res.off("close", gone);
    this.metrics.duration.observe((performance.now() - t0) / 1000);
    for (const r of results) this.metrics.promptTokens += r.promptTokens;
    const err = results.find((r) => r.engineReason === "error");
    if (err) throw new ApiError(500, `generation failed: ${err.error ?? "engine error"}`);
    // timed out before its first token (waiting for a slot): not an (empty) answer
    if (results.some((r) => r.engineReason === "timeout" && r.completionTokens === 0))
      throw new ApiError(503, "the request timed out before generating (the server is busy); retry later", "server_error", null, "timeout");
    return results;
  }

  /** OpenAI usage: each distinct prompt counted once (results come as n copies per prompt), every completion token. */
  private usage(results: SequenceResult[], n = results.length) {
    const firsts = results.filter((_, i) => i % Math.max(n, 1) === 0);
    const prompt = firsts.reduce((a, r) => a + r.promptTokens, 0), cached = firsts.reduce((a, r) => a + r.cachedTokens, 0);
    const completion = results.reduce((a, r) => a + r.completionTokens, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } };
  }

  // ---------------------------------------------------------------------------------------------------------------
  // POST /v1/chat/completions

  private chatPrompt(r: ChatRequest): { ids: number[]; tools: boolean } {
    const text = (c: ChatRequest["messages"][number]["content"]) => (Array.isArray(c) ? c.map((p) => p.text).join("") : c ?? "");
    const messages: ChatMessage[] = r.messages.map((m) => {
      const out: ChatMessage = { role: m.role === "developer" ? "system" : m.role, content: m.role === "assistant" && m.content == null && m.tool_calls?.length ? null : text(m.content) };
      if (m.tool_calls?.length) out.tool_calls = m.tool_calls.map((c) => ({ id: c.id ?? undefined, type: "function", function: { name: c.function.name, arguments: c.function.arguments } }));
      if (m.tool_call_id) out.tool_call_id = m.tool_call_id;
      if (m.name) out.name = m.name;
      return out;
    });
    const tools = !!r.tools?.length && r.tool_choice !== "none";
    if (r.tool_choice && typeof r.tool_choice === "object" && !r.tools?.some((t) => t.function.name === (r.tool_choice as { function: { name: string } }).function.name)) {
      throw badRequest(`tool_choice names '${r.tool_choice.function.name}', which is not in tools`, "tool_choice");
    }
    let templateTools: unknown[] | undefined;
    if (tools) {
      const template = selectChatTemplate(this.tok, { tools: r.tools! });
      if (/\btools\b/.test(template)) templateTools = r.tools!;
      else {
        let sys = toolsSystemPrompt(r.tools!);
        if (r.tool_choice === "required") sys += "\n\nYou must call at least one tool.";
        else if (r.tool_choice && typeof r.tool_choice === "object") sys += `\n\nYou must call the tool "${r.tool_choice.function.name}".`;
        const first = messages.findIndex((m) => m.role === "system");
        if (first >= 0) messages[first] = { ...messages[first], content: `${messages[first].content}\n\n${sys}` };
        else messages.unshift({ role: "system", content: sys });
      }
    }
    const ids = this.tok.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true, tools: templateTools }) as number[];
    return { ids, tools };
  }

  private async chat(req: IncomingMessage, res: ServerResponse, r: ChatRequest): Promise<void> {
    this.checkModel(r.model);
    if (r.top_logprobs != null && !r.logprobs) throw badRequest("top_logprobs needs logprobs: true", "top_logprobs");
    const { ids, tools } = this.chatPrompt(r);
    const stop = r.stop == null ? [] : typeof r.stop === "string" ? (r.stop ? [r.stop] : []) : r.stop;
    const maxTokens = r.max_completion_tokens ?? r.max_tokens ?? this.engine.info.contextLength - ids.length;
    const params = this.params(r, maxTokens, r.logprobs ? r.top_logprobs ?? 0 : null, ids.length);
    const n = r.n ?? 1;
    const specs = this.copies({ promptIds: ids, params, stop, tools }, n);
    const rid = id("chatcmpl"), created = Math.floor(Date.now() / 1000);
    const chatLogprobs = (l: TokenLogprob[]) => ({
      content: l.map((t) => ({ token: t.token, logprob: t.logprob, bytes: t.bytes, top_logprobs: t.top.map((a) => ({ token: a.token, logprob: a.logprob, bytes: a.bytes })) })),
      refusal: null,
    });

    if (!r.stream) {
      const results = await this.run(req, res, rid, specs);
      sendJson(res, 200, {
        id: rid, object: "chat.completion", created, model: this.modelId, system_fingerprint: "fathom",
        choices: results.map((x) => ({
          index: x.index,
          message: { role: "assistant", content: x.toolCalls.length && !x.text ? null : x.text, refusal: null, ...(x.toolCalls.length ? { tool_calls: x.toolCalls } : {}) },
          logprobs: r.logprobs ? chatLogprobs(x.logprobs) : null,
          finish_reason: x.finishReason,
        })),
        usage: this.usage(results),
      });
      return;
    }

    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      sseData(res, { id: rid, object: "chat.completion.chunk", created, model: this.modelId, system_fingerprint: "fathom", choices, ...extra });
    const begin = () => {
      if (res.headersSent) return;
      startSse(res);
      for (let i = 0; i < n; i++) chunk([{ index: i, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]);
    };
    const toolIndex = new Array<number>(n).fill(0);
    const results = await this.run(req, res, rid, specs, (d) => {
      begin();
      const delta: Record<string, unknown> = {};
      if (d.text) delta.content = d.text;
      if (d.toolCalls.length) delta.tool_calls = d.toolCalls.map((c) => ({ index: toolIndex[d.index]++, id: c.id, type: "function", function: c.function }));
      chunk([{ index: d.index, delta, logprobs: r.logprobs && d.logprobs.length ? chatLogprobs(d.logprobs) : null, finish_reason: null }]);
    }, begin);
    for (const x of results) chunk([{ index: x.index, delta: {}, logprobs: null, finish_reason: x.finishReason }]);
    if (r.stream_options?.include_usage) chunk([], { usage: this.usage(results) });
    sseData(res, "[DONE]");
    res.end();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // POST /v1/completions

  private async completions(req: IncomingMessage, res: ServerResponse, r: CompletionRequest): Promise<void> {
    this.checkModel(r.model);
    if (r.best_of != null && r.best_of !== (r.n ?? 1)) throw badRequest("best_of other than n is not supported", "best_of");
    if (r.echo && r.logprobs != null) throw badRequest("echo with logprobs is not supported (prompt log-probs are not computed)", "echo");
    if (r.suffix != null && r.echo) throw badRequest("echo cannot be used with suffix", "echo");
    const p = r.prompt;
    const prompts: (string | number[])[] = typeof p === "string" ? [p] : p.length && typeof p[0] === "number" ? [p as number[]] : (p as (string | number[])[]);
    const n = r.n ?? 1;
    const stop = r.stop == null ? [] : typeof r.stop === "string" ? (r.stop ? [r.stop] : []) : r.stop;
    const specs: SequenceSpec[] = [];
    const echoText: string[] = [];
    for (const [i, q] of prompts.entries()) {
      let ids: number[];
      if (r.suffix != null) {
        if (typeof q !== "string") throw badRequest("suffix needs a text prompt", "prompt");
        ids = buildFimPrompt(this.tok, q, r.suffix).ids;
      } else if (typeof q === "string") ids = this.tok.encode(q);
      else { this.checkIds(q, `prompt[${i}]`); ids = q; }
      echoText.push(typeof q === "string" ? q : this.tok.decode(q, { skipSpecialTokens: true }));
      const params = this.params(r, r.max_tokens ?? 16, r.logprobs ?? null, ids.length);
      specs.push(...this.copies({ promptIds: ids, params, stop, tools: false }, n));
    }
    const rid = id("cmpl"), created = Math.floor(Date.now() / 1000);
    const echo = (i: number) => (r.echo ? echoText[Math.floor(i / n)] : "");
    const completionLogprobs = (l: TokenLogprob[], offset0: number) => {
      let off = offset0;
      return {
        tokens: l.map((t) => t.token),
        token_logprobs: l.map((t) => t.logprob),
        top_logprobs: l.map((t) => Object.fromEntries(t.top.map((a) => [a.token, a.logprob]))),
        text_offset: l.map((t) => { const o = off; off += t.token.length; return o; }),
      };
    };

    if (!r.stream) {
      const results = await this.run(req, res, rid, specs);
      const usage = this.usage(results, n);
      sendJson(res, 200, {
        id: rid, object: "text_completion", created, model: this.modelId, system_fingerprint: "fathom",
        choices: results.map((x) => ({ index: x.index, text: echo(x.index) + x.text, logprobs: r.logprobs != null ? completionLogprobs(x.logprobs, 0) : null, finish_reason: x.finishReason })),
        usage,
      });
      return;
    }

    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      sseData(res, { id: rid, object: "text_completion", created, model: this.modelId, system_fingerprint: "fathom", choices, ...extra });
    const offsets = new Array<number>(specs.length).fill(0);
    const begin = () => {
      if (res.headersSent) return;
      startSse(res);
      if (r.echo) specs.forEach((_, i) => chunk([{ index: i, text: echo(i), logprobs: null, finish_reason: null }]));
    };
    const results = await this.run(req, res, rid, specs, (d) => {
      begin();
      const lp = r.logprobs != null && d.logprobs.length ? completionLogprobs(d.logprobs, offsets[d.index]) : null;
      for (const t of d.logprobs) offsets[d.index] += t.token.length;   // as the non-streamed text_offset counts
      chunk([{ index: d.index, text: d.text, logprobs: lp, finish_reason: null }]);
    }, begin);
    for (const x of results) chunk([{ index: x.index, text: "", logprobs: null, finish_reason: x.finishReason }]);
    if (r.stream_options?.include_usage) chunk([], { usage: this.usage(results, n) });
    sseData(res, "[DONE]");
    res.end();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // POST /v1/embeddings

  private async embeddings(res: ServerResponse, r: EmbeddingRequest): Promise<void> {
    this.checkModel(r.model);
    const info = this.engine.info;
    if (r.dimensions != null && r.dimensions !== info.hiddenSize) throw badRequest(`dimensions must be ${info.hiddenSize} (the model's hidden size) or absent`, "dimensions");
    const inp = r.input;
    const inputs: (string | number[])[] = typeof inp === "string" ? [inp] : inp.length && typeof inp[0] === "number" ? [inp as number[]] : (inp as (string | number[])[]);
    const ids = inputs.map((q, i) => {
      const t = typeof q === "string" ? this.tok.encode(q) : q;
      if (typeof q !== "string") this.checkIds(q, `input[${i}]`);
      if (t.length === 0) throw badRequest(`input[${i}] is empty`, "input");
      if (t.length > info.contextLength) throw new ApiError(400, `input[${i}] has ${t.length} tokens; the context length is ${info.contextLength}`, "invalid_request_error", "input", "context_length_exceeded");
      return t;
    });
    let vecs: Float32Array[];
    try { vecs = await this.engine.embed(ids); } catch (e) {
      if (e instanceof EngineBusyError) throw e;
      throw new ApiError(500, `embedding failed: ${(e as Error).message}`);
    }
    const tokens = ids.reduce((a, t) => a + t.length, 0);
    sendJson(res, 200, {
      object: "list", model: this.modelId,
      data: vecs.map((v, i) => ({
        object: "embedding", index: i,
        embedding: r.encoding_format === "base64" ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : Array.from(v),
      })),
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    });
  }
}
