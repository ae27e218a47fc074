/**
 * Engine tokens/s on a Qwen3-0.6B-shaped model with random weights (d_model 1024, 28 layers, 16
 * query heads and 8 key/value heads of 128, MLP 3072, tied embeddings, 151,936 vocabulary rows;
 * context capped at 4096 here), one JSON line per measurement, with the load averages around it.
 *
 *   npm run build && node dist/bench/qwen3-speed.js --mode sample [--batch 8] [--new 32] [--impl native|wasm|ts]
 *   node dist/bench/qwen3-speed.js --mode train [--batch 1] [--seq 64] [--steps 2] [--impl native|wasm|ts]
 *
 * sample: KV-cache decoding of `--new` tokens for `--batch` sequences after an 8-token prompt,
 * multinomial at temperature 1; tokens/s counts generated tokens. train: teacher-forced next-token
 * cross-entropy over batch × seq tokens, backward and one AdamW step; tokens/s counts batch × seq,
 * median over the steps after one warm-up step.
 */
import { loadavg } from "node:os";
import { createEngine, referenceEngine, type Engine } from "../src/engine/engine.js";
import { Rng } from "../src/engine/rng.js";
import { AdamW } from "../src/engine/adamw.js";
import { crossEntropyForward, crossEntropyBackward } from "../src/engine/ops/softmax.js";
import { validateModelConfig } from "../src/model/config.js";
import { countParams } from "../src/model/layout.js";
import { Transformer } from "../src/model/transformer.js";
import { generate } from "../src/model/generate.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : process.argv[i + 1];
}
const int = (name: string, fallback: number) => {
  const v = Number(arg(name, String(fallback)));
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
};

const QWEN3_0_6B = validateModelConfig({
  arch: "qwen3",
  vocabSize: 151_936,
  dModel: 1024,
  nLayers: int("layers", 28),
  nHeads: 16,
  nKvHeads: 8,
  headDim: 128,
  dFF: 3072,
  maxSeqLen: 4096,
  normEps: 1e-6,
  ropeTheta: 1_000_000,
  tiedEmbeddings: true,
  valueHead: false,
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const mode = arg("mode", "sample");
  const impl = arg("impl", "native");
  if (impl !== "native" && impl !== "wasm" && impl !== "ts")
    throw new Error("--impl must be native, wasm or ts");
  const threads = int("threads", 2);
  const engine: Engine & { close?: () => Promise<void> } =
    impl === "ts" ? referenceEngine() : await createEngine({ threads, impl });
  const load0 = loadavg();
  const rng = new Rng(1);
  const t0 = performance.now();
  const model = new Transformer(QWEN3_0_6B, engine, rng);
  const initSeconds = (performance.now() - t0) / 1000;
  const V = QWEN3_0_6B.vocabSize;
  let result: Record<string, unknown>;
  if (mode === "sample") {
    const B = int("batch", 8);
    const steps = int("new", 32);
    const prompts = Array.from({ length: B }, () => Array.from({ length: 8 }, () => rng.int(V)));
    const t = performance.now();
    const gen = generate(model, prompts, {
      maxNewTokens: steps,
      temperature: 1,
      topP: 1,
      stopTokens: [],
      rng,
    });
    const s = (performance.now() - t) / 1000;
    const tokens = gen.tokens.reduce((a, x) => a + x.length, 0);
    result = { batch: B, prompt: 8, new_tokens: steps, seconds: s, tokens_per_s: tokens / s };
  } else if (mode === "train") {
    const B = int("batch", 1);
    const T = int("seq", 64);
    const steps = int("steps", 2);
    const N = B * T;
    const ids = Int32Array.from({ length: N }, () => rng.int(V));
    const targets = Int32Array.from({ length: N }, (_, i) => ((i + 1) % T === 0 ? -1 : ids[i + 1]));
    const opt = new AdamW(model.params, model.grads, {
      lr: 1e-5,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
    });
    const losses = new Float32Array(N);
    const logp = engine.alloc(N * V);
    const dlogits = engine.alloc(N * V);
    const dl = new Float32Array(N).fill(1 / N);
    const times: number[] = [];
    for (let s = 0; s <= steps; s++) {
      const t = performance.now();
      model.zeroGrad();
      const logits = model.forward(ids, B, T);
      crossEntropyForward(losses, logp, logits, targets, N, V);
      dlogits.fill(0);
      crossEntropyBackward(dlogits, dl, logp, targets, N, V);
      model.backward(dlogits);
      opt.clipGradNorm(1);
      opt.step();
      if (s > 0) times.push((performance.now() - t) / 1000); // step 0 warms up
    }
    result = { batch: B, seq: T, steps, step_seconds: times, tokens_per_s: N / median(times) };
  } else throw new Error("--mode must be sample or train");
  await engine.close?.();
  console.log(
    JSON.stringify({
      mode,
      engine: impl === "ts" ? "ts-1t" : `${impl}-${threads}t`,
      params: countParams(model.layout),
      init_seconds: initSeconds,
      ...result,
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      loadavg_start: load0.map((x) => Math.round(x * 100) / 100),
      loadavg_end: loadavg().map((x) => Math.round(x * 100) / 100),
    }),
  );
}

main().catch((err) => {
  console.error(`qwen3-speed: ${(err as Error).message}`);
  process.exit(1);
});
