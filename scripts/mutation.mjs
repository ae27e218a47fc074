#!/usr/bin/env node
// Mutation check of the SAT core's tests: applies each listed defect to a copy of the sources,
// rebuilds, runs the tests that guard that code, and reports the mutations no test caught
// ("survivors"). Exit code 1 when any survives. Run after `npm run build` (it reuses build/*.wasm):
//   node scripts/mutation.mjs            # all mutations, ~2-4 min on 2 cores
//   node scripts/mutation.mjs kl-reversed zeta-zero
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ALGO_TESTS = [
  "algorithm-trust-region",
  "algorithm-stage",
  "algorithm-certificate",
  "testbed-theory",
  "testbed-games",
];

/** [name, file, the exact text to replace, its replacement, what the defect means]. */
const MUTATIONS = [
  [
    "kl-reversed",
    "src/algorithm/row-learner.ts",
    "kl[k] = klRow(rows, k * V, this.curRows, k * V, V);",
    "kl[k] = klRow(this.curRows, k * V, rows, k * V, V);",
    "trust-region KL measured as KL(cur ‖ new)",
  ],
  [
    "accept-violations",
    "src/algorithm/update.ts",
    "const violated = quantile(ev.kl) > u.radius;",
    "const violated = false;",
    "the check never rejects",
  ],
  [
    "current-advantages",
    "src/algorithm/stage.ts",
    'advantagesFor(st, b, a, w.spec === "current" ? null : w)',
    "advantagesFor(st, b, a, null)",
    "later agents use π_cur advantages",
  ],
  [
    "gae-traces-dropped",
    "src/algorithm/stage.ts",
    "const traces = w ? w.logTrace :",
    "const traces = false ? w!.logTrace :",
    "GAE ignores the truncated traces",
  ],
  [
    "unweighted-stats",
    "src/algorithm/advantages.ts",
    "sx += omega[i] * scores[i];",
    "sx += scores[i];",
    "advantage mean ignores the weights",
  ],
  [
    "zeta-zero",
    "src/algorithm/record.ts",
    "zeta += p * Math.abs(wFull[i] - wSur[i]) * Math.abs(adv.adv[i]);",
    "zeta += 0;",
    "truncation bias ζ forced to 0",
  ],
  [
    "paper-penalty-x0.1",
    "src/algorithm/certificate.ts",
    "const occupancyPenalty = ((2 * gamma) / (1 - gamma) ** 2) * aMax * sqrtDelta;",
    "const occupancyPenalty = 0.1 * ((2 * gamma) / (1 - gamma) ** 2) * aMax * sqrtDelta;",
    "paper occupancy penalty 10× too small",
  ],
  [
    "paper-penalty-x0.01",
    "src/algorithm/certificate.ts",
    "const occupancyPenalty = ((2 * gamma) / (1 - gamma) ** 2) * aMax * sqrtDelta;",
    "const occupancyPenalty = 0.01 * ((2 * gamma) / (1 - gamma) ** 2) * aMax * sqrtDelta;",
    "paper occupancy penalty 100× too small",
  ],
  [
    "pinsker-no-sqrt",
    "src/algorithm/certificate.ts",
    "sqrtDelta += Math.sqrt(Math.max(0, a.klRadius) / 2);",
    "sqrtDelta += Math.max(0, a.klRadius) / 2;",
    "√(δ/2) replaced by δ/2",
  ],
  [
    "cpo-penalty-x0.5",
    "src/algorithm/certificate.ts",
    "const cpoOccupancyPenalty = ((2 * gamma) / (1 - gamma) ** 2) * aMax * tv;",
    "const cpoOccupancyPenalty = 0.5 * ((2 * gamma) / (1 - gamma) ** 2) * aMax * tv;",
    "CPO penalty × 0.5",
  ],
  [
    "cpo-penalty-x0.1",
    "src/algorithm/certificate.ts",
    "const cpoOccupancyPenalty = ((2 * gamma) / (1 - gamma) ** 2) * aMax * tv;",
    "const cpoOccupancyPenalty = 0.1 * ((2 * gamma) / (1 - gamma) ** 2) * aMax * tv;",
    "CPO penalty × 0.1",
  ],
  [
    "sample-term-dropped",
    "src/algorithm/certificate.ts",
    "if (a.numEpisodes > 0)\n      samplePenalty +=",
    "if (a.numEpisodes < 0)\n      samplePenalty +=",
    "finite-sample term dropped",
  ],
  [
    "adam-momentum-kept",
    "src/algorithm/update.ts",
    "await learner.endUpdate(scale);",
    "await learner.endUpdate(1);",
    "momentum not scaled by ξ^j on a backtracked step",
  ],
  [
    "beta-never-falls",
    "src/algorithm/record.ts",
    "else if (out.fullQuantile < radius / g) next = beta / g;",
    "",
    "β only grows",
  ],
  [
    "amax-weighted",
    "src/algorithm/certificate.ts",
    "return groupNormalised && uniformWeights",
    "return groupNormalised",
    "A_max = sqrt(G−1) for weighted z-scores",
  ],
  [
    "advantage-zero-prob",
    "src/testbed/exact.ts",
    "if (m !== k) others *= tables[act[m]][s * A + (rest % A)];",
    "if (m !== k) others *= tables[act[m]][s * A + (rest % A)] * (tables[act[k]][s * A + (Math.floor(j / A ** k) % A)] > 0 ? 1 : 0);",
    "A(s,a) = −V(s) for actions of probability 0",
  ],
].map(([name, file, find, replace, what]) => ({ name, file, find, replace, what, tests: ALGO_TESTS }));

const only = process.argv.slice(2);
const chosen = only.length ? MUTATIONS.filter((m) => only.includes(m.name)) : MUTATIONS;
if (chosen.length === 0) {
  console.error(
    `mutation: no mutation named ${only.join(", ")}; known: ${MUTATIONS.map((m) => m.name).join(", ")}`,
  );
  process.exit(2);
}

const work = mkdtempSync(join(tmpdir(), "sat-mutation-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
for (const d of ["src", "test", "bench", "experiments", "build"])
  cpSync(join(ROOT, d), join(work, d), { recursive: true });
for (const f of ["tsconfig.json", "package.json"]) cpSync(join(ROOT, f), join(work, f));
symlinkSync(join(ROOT, "node_modules"), join(work, "node_modules"));
const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");

const rows = [];
for (const m of chosen) {
  const path = join(work, m.file);
  const pristine = readFileSync(path, "utf8");
  if (!pristine.includes(m.find)) {
    console.error(
      `mutation ${m.name}: the text to mutate is no longer in ${m.file}; update scripts/mutation.mjs`,
    );
    process.exit(2);
  }
  writeFileSync(path, pristine.replace(m.find, m.replace));
  const t0 = Date.now();
  const build = spawnSync(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: work, encoding: "utf8" });
  let status;
  if (build.status !== 0) status = "killed (does not compile)";
  else {
    const files = m.tests.map((t) => `dist/test/${t}.test.js`);
    const run = spawnSync(process.execPath, ["--test", ...files], { cwd: work, encoding: "utf8" });
    const failed = /^# fail (\d+)/m.exec(run.stdout ?? "")?.[1] ?? "?";
    status = run.status === 0 ? "SURVIVED" : `killed (${failed} failing)`;
  }
  writeFileSync(path, pristine);
  rows.push({ name: m.name, what: m.what, status, seconds: ((Date.now() - t0) / 1000).toFixed(0) });
  console.error(`${m.name}: ${status}`);
}
const w = Math.max(...rows.map((r) => r.name.length));
console.log(`| mutation${" ".repeat(w - 8)} | defect | result |\n|${"-".repeat(w + 2)}|---|---|`);
for (const r of rows) console.log(`| ${r.name.padEnd(w)} | ${r.what} | ${r.status} |`);
const survivors = rows.filter((r) => r.status === "SURVIVED").length;
console.log(`\n${rows.length} mutations, ${survivors} survived`);
process.exit(survivors > 0 ? 1 : 0);
