// node:http plumbing: bounded body reading, JSON parsing that rejects what could hurt (invalid UTF-8, deep nesting),
// Bearer keys compared in constant time, CORS, and JSON/SSE responses.
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { ApiError, badRequest } from "./api_error.js";

/** Reads the whole body: 413 past `limit` bytes, 408 when it does not arrive within `timeoutMs`. */
export function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > limit) {
      reject(new ApiError(413, `the request body is larger than the limit of ${limit} bytes`, "invalid_request_error", null, "request_too_large"));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0, settled = false;
    const finish = (err: ApiError | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.off("data", onData); req.off("end", onEnd); req.off("error", onError); req.off("aborted", onAborted);
      if (err) { req.resume(); reject(err); } else resolve(Buffer.concat(chunks, size));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) finish(new ApiError(413, `the request body is larger than the limit of ${limit} bytes`, "invalid_request_error", null, "request_too_large"));
      else chunks.push(c);
    };
    const onEnd = () => finish(null);
    const onError = () => finish(new ApiError(400, "the request body could not be read", "invalid_request_error", null, "bad_body"));
    const onAborted = () => finish(new ApiError(400, "the client closed the connection while sending the body", "invalid_request_error", null, "bad_body"));
    const timer = setTimeout(() => finish(new ApiError(408, `the request body did not arrive within ${timeoutMs} ms`, "invalid_request_error", null, "request_timeout")), timeoutMs);
    req.on("data", onData); req.on("end", onEnd); req.on("error", onError); req.on("aborted", onAborted);
  });
}

const MAX_DEPTH = 64;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Body bytes → JSON value: 400 for an empty body, invalid UTF-8, bad JSON or nesting deeper than 64. */
export function parseJsonBody(buf: Buffer): unknown {
  if (buf.length === 0) throw badRequest("the request body is empty (expected a JSON object)");
  let text: string;
  try { text = utf8.decode(buf); } catch { throw badRequest("the request body is not valid UTF-8"); }
  let value: unknown;
  try { value = JSON.parse(text); } catch (e) { throw badRequest(`the request body is not valid JSON: ${(e as Error).message}`); }
  // Iterative depth check, so later recursive walks (zod, JSON.stringify of tool schemas) stay shallow.
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (d > MAX_DEPTH) throw badRequest(`the request body nests deeper than ${MAX_DEPTH} levels`);
    for (const c of Array.isArray(v) ? v : Object.values(v)) if (c !== null && typeof c === "object") stack.push([c, d + 1]);
  }
  return value;
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** Checks `Authorization: Bearer <key>` against `key` in constant time (equal-length SHA-256 digests). */
export function checkBearer(header: string | undefined, keyDigest: Buffer): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? "");
  const given = digest(m ? m[1].trim() : "");
  return timingSafeEqual(given, keyDigest) && m !== null;
}
export const keyDigest = digest;

export interface CorsOptions {
  /** "*" for any origin, or the exact origins allowed (e.g. "http://localhost:5173"). */
  origins: "*" | readonly string[];
}

/** CORS headers for this request's Origin, or none when CORS is off or the origin is not allowed. */
export function corsHeaders(cors: CorsOptions | null, origin: string | undefined): Record<string, string> {
  if (!cors || !origin) return {};
  if (cors.origins === "*") return { "Access-Control-Allow-Origin": "*" };
  return cors.origins.includes(origin) ? { "Access-Control-Allow-Origin": origin, Vary: "Origin" } : {};
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) { res.end(); return; }
  const text = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, e: ApiError, headers: Record<string, string> = {}): void {
  sendJson(res, e.status, e.toJSON(), headers);
}

/** Starts a Server-Sent Events response. */
export function startSse(res: ServerResponse, headers: Record<string, string> = {}): void {
  res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", Connection: "keep-alive", "X-Accel-Buffering": "no", ...headers });
  res.flushHeaders();
}

export function sseData(res: ServerResponse, data: unknown): void {
  if (!res.writableEnded && !res.destroyed) res.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
}
