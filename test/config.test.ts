/** Config schema and loader: defaults, precedence, derived values, round trips, error locations. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConfigError,
  configToYaml,
  crossFieldProblems,
  defaultConfig,
  defaultsYaml,
  editDistance,
  klRadiusOf,
  listKeys,
  loadConfig,
  parsedDefaults,
  parseSetToken,
  readConfigFile,
  SECTION_NAMES,
} from "../src/config/index.js";

const tmp = mkdtempSync(join(tmpdir(), "sat-config-"));
let fileCounter = 0;
function file(text: string, ext = "yaml"): string {
  const p = join(tmp, `c${fileCounter++}.${ext}`);
  writeFileSync(p, text);
  return p;
}

function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.ok(!err.message.includes("\n"), `message has several lines: ${err.message}`);
    return err;
  }
  assert.fail("no error thrown");
}

test("defaults validate, and every key has a default, a type and a description", () => {
  const cfg = defaultConfig();
  const keys = listKeys();
  assert.ok(keys.length >= 70, `only ${keys.length} keys`);
  assert.equal(new Set(keys.map((k) => k.path)).size, keys.length);
  for (const k of keys) {
    assert.ok(SECTION_NAMES.includes(k.section), k.path);
    assert.ok(k.description.length >= 10, `${k.path} has no real description`);
    assert.ok(k.type.length > 0 && k.type !== "value", `${k.path} has no type text`);
    assert.notEqual(k.default, undefined, `${k.path} has no default`);
  }
  // Conventions §1 defaults that other modules rely on.
  assert.equal(cfg.rollout.n, 8);
  assert.equal(cfg.algo.clip_ratio_low, 0.2);
  assert.equal(cfg.algo.clip_ratio_high, 0.2, "clip_ratio_high defaults to clip_ratio_low");
  assert.equal(cfg.algo.kl_radius, 0.01);
  assert.equal(cfg.algo.kl_quantile, 0.99);
  assert.equal(cfg.algo.kl_coef_growth, 1.5);
  assert.equal(cfg.algo.max_backtracks, 10);
  assert.equal(cfg.algo.backtrack_ratio, 0.8);
  assert.equal(cfg.algo.dkw_eta, 0.05);
  assert.equal(cfg.run.seed, 42);
  assert.equal(cfg.run.save_steps, -1);
  assert.deepEqual(cfg.eval.k, [1, 4, 8]);
  assert.deepEqual(crossFieldProblems(parsedDefaults()), []);
});

test("the resolved config is deeply frozen and defaults are not shared between loads", () => {
  const a = defaultConfig();
  assert.ok(Object.isFrozen(a) && Object.isFrozen(a.algo) && Object.isFrozen(a.eval.k));
  assert.throws(() => {
    (a.algo as { kl_coef: number }).kl_coef = 5;
  }, TypeError);
  const b = loadConfig({ sets: ["eval.k=[1,2]", "eval.n=2"] });
  assert.deepEqual(a.eval.k, [1, 4, 8]);
  assert.deepEqual(b.eval.k, [1, 2]);
  assert.deepEqual(defaultConfig().eval.k, [1, 4, 8]);
});

test("precedence: defaults < file < --set (in order) < dedicated flags", () => {
  const f = file("algo:\n  kl_radius: 0.02\n  kl_coef: 0.3\nrun:\n  seed: 7\n  max_steps: 9\n");
  const fromFile = loadConfig({ file: f });
  assert.equal(fromFile.algo.kl_radius, 0.02);
  assert.equal(fromFile.algo.kl_coef, 0.3);
  assert.equal(fromFile.algo.kl_quantile, 0.99, "untouched keys keep defaults");
  const withSets = loadConfig({
    file: f,
    sets: ["algo.kl_radius=0.03", "algo.kl_radius=0.04", "run.seed=8"],
  });
  assert.equal(withSets.algo.kl_radius, 0.04, "the later --set wins");
  assert.equal(withSets.algo.kl_coef, 0.3);
  const withFlags = loadConfig({
    file: f,
    sets: ["run.seed=8"],
    flags: [{ flag: "--seed", path: "run.seed", value: "9" }],
  });
  assert.equal(withFlags.run.seed, 9, "a dedicated flag beats --set");
  assert.equal(withFlags.run.max_steps, 9);
});

test("--set values parse as JSON, else as strings; objects merge into sections", () => {
  const c = loadConfig({
    sets: [
      "eval.k=[1,2]",
      "eval.n=4",
      "tasks.name=sort",
      "tasks.dataset=null",
      "eval.before_train=false",
      'algo={"kl_coef":0.5}',
      "run.output_dir=runs/x y",
    ],
  });
  assert.deepEqual(c.eval.k, [1, 2]);
  assert.equal(c.tasks.name, "sort");
  assert.equal(c.tasks.dataset, null);
  assert.equal(c.eval.before_train, false);
  assert.equal(c.algo.kl_coef, 0.5);
  assert.equal(c.algo.kl_radius, 0.01, "merging a section keeps its other keys");
  assert.equal(c.run.output_dir, "runs/x y");
  assert.deepEqual(parseSetToken("a.b=c=d"), { path: ["a", "b"], value: "c=d" });
  const raw = loadConfig({
    flags: [{ flag: "--output-dir", path: "run.output_dir", value: "123", raw: true }],
  });
  assert.equal(raw.run.output_dir, "123", "path flags are not parsed as JSON");
  const fallback = loadConfig({
    sets: ["run.output_dir=mine"],
    fallbacks: { "run.output_dir": "auto", "run.seed": 1 },
  });
  assert.equal(fallback.run.output_dir, "mine", "a fallback never overrides a given value");
  assert.equal(fallback.run.seed, 1, "a fallback fills a key the user left unset");
});

test("derived and per-agent values", () => {
  assert.equal(loadConfig({ sets: ["algo.clip_ratio_low=0.3"] }).algo.clip_ratio_high, 0.3);
  assert.equal(loadConfig({ sets: ["algo.clip_ratio_high=0.28"] }).algo.clip_ratio_high, 0.28);
  const c = loadConfig({ sets: ["team.kl_radius=[0.02,null,0.005]"] });
  assert.deepEqual(
    [0, 1, 2].map((i) => klRadiusOf(c, i)),
    [0.02, 0.01, 0.005],
  );
});

test("--print-defaults output reloads to the default config; a resolved config round-trips", () => {
  assert.deepEqual(loadConfig({ file: file(defaultsYaml()) }), defaultConfig());
  const tricky = loadConfig({
    sets: [
      'tasks.name="123"',
      "tasks.dataset=data: x.jsonl",
      'run.output_dir="null"',
      "optim.eps=1e-12",
      "eval.k=[2]",
      "eval.n=2",
      'team.agent_checkpoints=[null,"a b",null]',
    ],
  });
  assert.equal(tricky.tasks.name, "123");
  assert.equal(tricky.run.output_dir, "null");
  const again = loadConfig({ file: file(configToYaml(tricky, { comments: true })) });
  assert.deepEqual(again, tricky);
  const viaJson = loadConfig({ file: file(JSON.stringify(tricky), "json") });
  assert.deepEqual(viaJson, tricky);
});

test("file errors name file:line", () => {
  const bad = file("algo:\n  kl_radius: 0.02\n  order: [static\nrun:\n  seed: 1\n");
  assert.match(
    configError(() => loadConfig({ file: bad })).message,
    new RegExp(`^${bad}:\\d+:\\d+: bad YAML/JSON: `),
  );
  const unknown = file("algo:\n  kl_radius: 0.02\n  num_generations: 4\n");
  assert.equal(
    configError(() => loadConfig({ file: unknown })).message,
    `${unknown}:3: unknown key algo.num_generations; num_generations is the TRL name; sat-llm uses rollout.n`,
  );
  const range = file("rollout:\n  n: 8\n  top_p: 1.5\n");
  assert.equal(
    configError(() => loadConfig({ file: range })).message,
    `${range}:3: rollout.top_p: expected number in (0, 1], got number 1.5`,
  );
  const dup = file("run:\n  seed: 1\n  seed: 2\n");
  assert.match(
    configError(() => loadConfig({ file: dup })).message,
    new RegExp(`^${dup}:3:\\d+: bad YAML/JSON: Map keys must be unique`),
  );
  assert.deepEqual(readConfigFile(file("")).data, {}, "an empty file is an empty config");
  const cross = file("eval:\n  k: [1, 16]\n");
  assert.match(
    configError(() => loadConfig({ file: cross })).message,
    /eval\.n \(8\) must be ≥ the largest k in eval\.k \(16\)/,
  );
});

test("several problems: the first is shown and the rest counted", () => {
  const e = configError(() => loadConfig({ sets: ["algo.bogus=1", "rollout.n=x", "eval.n=0"] }));
  assert.match(
    e.message,
    /^--set algo\.bogus=1: unknown key algo\.bogus.* \(2 more problems after this one\)$/,
  );
  assert.equal(e.key, "algo.bogus");
});

test("edit distance (optimal string alignment)", () => {
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("modle", "model"), 1, "a swap of neighbours is one edit");
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("same", "same"), 0);
});
