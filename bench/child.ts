/**
 * One measurement in a process of its own, so its peak resident memory is its own and a large
 * model's heap does not stay behind for the next one: reads a job as JSON on stdin, prints the
 * result as JSON on stdout. bench/suite.ts starts it; it is not meant to be run by hand.
 *   job: { kind: "run" | "profile", engine: EngineSpec, model: name, settings: BenchSettings }
 */
import { readFileSync } from "node:fs";
import { createBenchEngine, type EngineSpec } from "./engine.js";
import { profileModel, type Profile } from "./profile.js";
import {
  benchModels,
  sampleBench,
  trainBench,
  type BenchSettings,
  type SampleResult,
  type TrainResult,
} from "./workloads.js";

export interface ChildJob {
  kind: "run" | "profile";
  engine: EngineSpec;
  model: string;
  settings: BenchSettings;
}

export type ChildResult =
  | { kind: "run"; isa: string | null; train: TrainResult; sample: SampleResult; peak_rss_mib: number }
  | { kind: "profile"; isa: string | null; profile: Profile; peak_rss_mib: number };

const job = JSON.parse(readFileSync(0, "utf8")) as ChildJob;
const model = benchModels()[job.model];
if (!model) throw new Error(`bench child: unknown model ${job.model}`);
const be = await createBenchEngine(job.engine);
let result: ChildResult;
try {
  if (job.kind === "run") {
    const train = trainBench(be, model.config, job.settings);
    const sample = sampleBench(be, model.config, job.settings);
    result = { kind: "run", isa: be.isa, train, sample, peak_rss_mib: process.resourceUsage().maxRSS / 1024 };
  } else {
    const profile = profileModel(be, job.model, model.config, job.settings);
    result = { kind: "profile", isa: be.isa, profile, peak_rss_mib: process.resourceUsage().maxRSS / 1024 };
  }
} finally {
  await be.close();
}
process.stdout.write(JSON.stringify(result) + "\n");
