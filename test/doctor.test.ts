/**
 * `sat doctor`: with the repository's Python it reports the installed versions of the backend's
 * packages (against the pins) and the engine's kernels; with no usable Python it says so and gives
 * the command that installs the backend.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { pinnedVersions, type DoctorReport } from "../src/app/doctor.js";
import { runSat } from "./sat-process.js";
import { probeFor } from "./torch-helpers.js";

const sat = (argv: string[], env: Record<string, string>) =>
  runSat(argv, { env: { ...process.env, ...env } });

const { probe, skip } = probeFor(["torch", "transformers", "safetensors", "numpy"]);

test(
  "torch backend: sat doctor reports the Python, the backend's packages against their pins, CUDA and the kernels",
  { skip },
  async () => {
    if (!probe.ok) return;
    const r = await sat(["doctor", "--json"], { SAT_PYTHON: probe.python });
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as DoctorReport;
    assert.equal(report.python?.path, probe.python);
    assert.equal(report.torchReady, true);
    const pins = pinnedVersions();
    for (const name of ["torch", "transformers", "safetensors"]) {
      const p = report.packages.find((x) => x.name === name)!;
      assert.equal(p.installed, probe.versions[name], name);
      assert.equal(p.pinned, pins[name], name);
    }
    assert.ok(
      ["wasm", "ts", "native"].some((k) => report.engine.kernels.startsWith(k)),
      report.engine.kernels,
    );
    assert.ok(Array.isArray(report.gpus));
    const text = await sat(["doctor"], { SAT_PYTHON: probe.python });
    assert.match(text.stdout, /^torch\s+\S+/m);
    assert.match(text.stdout, /^model\.backend=torch\s+ready$/m);
  },
);

test("torch backend: sat doctor without a usable Python names the command that installs the backend", async () => {
  const r = await sat(["doctor"], { SAT_PYTHON: "/nonexistent/python3" });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^python\s+not found \(\/nonexistent\/python3: not found\)$/m);
  assert.match(r.stdout, /^model\.backend=torch\s+not ready$/m);
  assert.match(r.stdout, /pip install -r python\/requirements\.txt/);
});
