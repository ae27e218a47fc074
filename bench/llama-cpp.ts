/**
 * The node-llama-cpp sampling comparison on llama-135m: the same decode workload as sampleBench
 * (S sequences × steps tokens from BOS, temperature 1) on llama.cpp through node-llama-cpp, given
 * the model's weights as GGUF (`--gguf FILE`, written by `sat export --format gguf`). node-llama-cpp
 * is not a dependency: it is imported only when asked for (`npm install --no-save node-llama-cpp`),
 * and its absence, like a missing file, is reported as the reason rather than an error.
 */
import { existsSync } from "node:fs";
import { median, now } from "./timing.js";
import type { BenchSettings, SampleResult } from "./workloads.js";

export interface LlamaCppResult {
  gguf: string;
  version: string | null;
  threads: number;
  sample: SampleResult;
}

/** Minimal shape of the node-llama-cpp API used here (getLlama → model → context → sequences). */
interface LlamaCppModule {
  getLlama(): Promise<{
    loadModel(o: { modelPath: string }): Promise<{
      createContext(o: { sequences: number; contextSize: number; threads: number }): Promise<{
        getSequence(): { evaluate(tokens: number[], o: { temperature: number }): AsyncIterable<number> };
        dispose(): Promise<void>;
      }>;
      dispose(): Promise<void>;
    }>;
  }>;
}

export async function llamaCppSample(
  gguf: string,
  s: BenchSettings,
  threads: number,
  bos: number,
): Promise<{ result: LlamaCppResult | null; reason: string | null }> {
  if (!existsSync(gguf)) return { result: null, reason: `${gguf}: no such file` };
  let mod: LlamaCppModule;
  const name = "node-llama-cpp";
  try {
    mod = (await import(name)) as LlamaCppModule;
  } catch (err) {
    return {
      result: null,
      reason: `node-llama-cpp is not installed (npm install --no-save node-llama-cpp): ${(err as Error).message.split("\n")[0]}`,
    };
  }
  const llama = await mod.getLlama();
  const model = await llama.loadModel({ modelPath: gguf });
  const S = s.sampleSequences;
  try {
    const roundMs: number[] = [];
    for (let r = 0; r < s.sampleWarmup + s.sampleRepeats; r++) {
      // A fresh context per round (outside the timing): every sequence starts from BOS.
      const context = await model.createContext({
        sequences: S,
        contextSize: S * (s.sampleSteps + 8),
        threads,
      });
      try {
        const seqs = Array.from({ length: S }, () => context.getSequence());
        const t0 = now();
        // All sequences decode `sampleSteps` tokens at once; node-llama-cpp batches them.
        await Promise.all(
          seqs.map(async (seq) => {
            let n = 0;
            for await (const _token of seq.evaluate([bos], { temperature: 1 }))
              if (++n >= s.sampleSteps) break;
          }),
        );
        if (r >= s.sampleWarmup) roundMs.push(now() - t0);
      } finally {
        await context.dispose();
      }
    }
    const med = median(roundMs);
    const tokens = S * s.sampleSteps;
    return {
      result: {
        gguf,
        version: null,
        threads,
        sample: { tokens, round_ms: roundMs, median_ms: med, tok_s: (tokens / med) * 1000 },
      },
      reason: null,
    };
  } finally {
    await model.dispose();
  }
}
