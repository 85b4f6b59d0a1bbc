// llama.cpp (node-llama-cpp 3.21.1, CPU) as an independent reference: next-token log-probabilities at every
// position of a prompt, and greedy continuations, for a GGUF file. Flash attention off and an F32 KV cache, so the
// comparison is not blurred by F16 rounding (see shared/docs/peers.md).

export interface LlamaCppRun { logprobs: Map<number, number>[]; greedy: number[] }

let llamaPromise: Promise<unknown> | null = null;

export async function llamaCppAvailable(): Promise<boolean> {
  try { await import("node-llama-cpp"); return true; } catch { return false; }
}

async function getLlamaCpu(): Promise<any> {       // eslint-disable-line @typescript-eslint/no-explicit-any
  const { getLlama } = await import("node-llama-cpp");
  llamaPromise ??= getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  return llamaPromise;
}

/** For each prompt: log-probabilities of the next token after every position, then `greedyTokens` greedy tokens. */
export async function llamaCppRun(path: string, prompts: number[][], greedyTokens: number): Promise<LlamaCppRun[]> {
  const llama = await getLlamaCpu();
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, useMmap: false });
  const out: LlamaCppRun[] = [];
  try {
    for (const prompt of prompts) {
      const ctx = await model.createContext({ contextSize: 256, batchSize: 256, threads: 2, flashAttention: false,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
      try {
        const seq = ctx.getSequence();
        const res = await seq.controlledEvaluate(prompt.map((t: number) => [t, { generateNext: { probabilities: true, token: true } }]));
        const logprobs = res.map((r: { next?: { probabilities?: Map<number, number> } }) =>
          new Map([...(r.next?.probabilities ?? new Map()).entries()].map(([id, p]) => [id, Math.log(p)])));
        const greedy: number[] = [];
        let tok = res[res.length - 1].next.token as number;
        for (let i = 0; i < greedyTokens; i++) {
          greedy.push(tok);
          if (i === greedyTokens - 1) break;
          const r = await seq.controlledEvaluate([[tok, { generateNext: { token: true } }]]);
          tok = r[0].next.token;
        }
        out.push({ logprobs, greedy });
      } finally { await ctx.dispose(); }
    }
  } finally { await model.dispose(); }
  return out;
}
