// Request bodies, validated with zod. Unknown fields are dropped (clients send extras such as `user`); known fields
// must have the right type and range, and anything else is a 400 naming the field.
import { z } from "zod";
import { badRequest } from "./api_error.js";

const MAX_STOP = 4, MAX_STOP_CHARS = 256, MAX_N = 16, MAX_TOP_LOGPROBS = 20;

const int = (lo: number, hi: number) => z.number().int().min(lo).max(hi);
const tokenIds = z.array(int(0, 2 ** 31 - 1)).max(1 << 20);
const stop = z.union([z.string().max(MAX_STOP_CHARS), z.array(z.string().min(1).max(MAX_STOP_CHARS)).max(MAX_STOP)]).nullish();
const logitBias = z.record(z.string().regex(/^\d{1,10}$/, "logit_bias keys must be token ids"), z.number().min(-100).max(100)).nullish();

/** Knobs shared by chat and completions (OpenAI's names and ranges). */
const sampling = {
  model: z.string().min(1).max(256),
  n: int(1, MAX_N).nullish(),
  stop,
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  max_tokens: int(1, 1 << 20).nullish(),
  seed: z.number().int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: logitBias,
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  user: z.string().max(256).nullish(),
};

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const content = z.union([z.string(), z.array(textPart).max(1024)]).nullish();
const toolCall = z.object({
  id: z.string().max(256).nullish(),
  type: z.literal("function").nullish(),
  function: z.object({ name: z.string().min(1).max(256), arguments: z.string().max(1 << 20) }),
});
const message = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content,
  name: z.string().max(256).nullish(),
  tool_calls: z.array(toolCall).max(128).nullish(),
  tool_call_id: z.string().max(256).nullish(),
});
const tool = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/, "tool names are 1-64 characters of a-z, A-Z, 0-9, _, . and -"),
    description: z.string().max(8192).nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
  }),
});

export const ChatRequest = z.object({
  ...sampling,
  messages: z.array(message).min(1).max(4096),
  max_completion_tokens: int(1, 1 << 20).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: int(0, MAX_TOP_LOGPROBS).nullish(),
  tools: z.array(tool).max(128).nullish(),
  tool_choice: z.union([z.enum(["none", "auto", "required"]), z.object({ type: z.literal("function"), function: z.object({ name: z.string() }) })]).nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: z.object({ type: z.literal("text") }, { error: "only response_format {\"type\": \"text\"} is supported" }).nullish(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

export const CompletionRequest = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).min(1).max(64), tokenIds.min(1), z.array(tokenIds.min(1)).min(1).max(64)]),
  suffix: z.string().nullish(),
  echo: z.boolean().nullish(),
  logprobs: int(0, 5).nullish(),
  best_of: int(1, MAX_N).nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

export const EmbeddingRequest = z.object({
  model: z.string().min(1).max(256),
  input: z.union([z.string(), z.array(z.string()).min(1).max(256), tokenIds.min(1), z.array(tokenIds.min(1)).min(1).max(256)]),
  encoding_format: z.enum(["float", "base64"]).nullish(),
  dimensions: int(1, 1 << 20).nullish(),
  user: z.string().max(256).nullish(),
});
export type EmbeddingRequest = z.infer<typeof EmbeddingRequest>;

/** Parses `body` or throws a 400 naming the first bad field. */
export function validate<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw badRequest("the request body must be a JSON object");
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const param = issue.path.map(String).join(".") || null;
  throw badRequest(param ? `${param}: ${issue.message}` : issue.message, param, "invalid_value");
}
