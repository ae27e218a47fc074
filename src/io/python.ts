/**
 * Finding a Python interpreter that has the packages a feature needs (torch for the PyTorch
 * backend and the benchmark reference, tokenizers/transformers for parity tests, ...). Absence is a
 * normal outcome: callers get the reason in one line and skip or report it.
 *
 * Candidates, in order: $SAT_PYTHON alone when set; else the repository's `.venv/bin/python`
 * (what `.ci/run` creates from python/requirements.txt), then `python3` on the PATH.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

// Compiled to dist/src/io/python.js: the package root is three levels up.
export const PACKAGE_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const REPO_VENV_PYTHON = `${PACKAGE_ROOT}.venv/bin/python`;

export type PythonProbe =
  { ok: true; python: string; versions: Record<string, string> } | { ok: false; reason: string };

export function pythonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const chosen = env.SAT_PYTHON?.trim();
  if (chosen) return [chosen];
  return existsSync(REPO_VENV_PYTHON) ? [REPO_VENV_PYTHON, "python3"] : ["python3"];
}

/**
 * The first candidate in which every distribution in `packages` is installed, with their versions.
 * Reads the installed metadata without importing the packages (importing torch takes seconds).
 */
export function findPython(
  packages: readonly string[],
  candidates: readonly string[] = pythonCandidates(),
): PythonProbe {
  const script =
    "import importlib.metadata as m, json, sys\n" +
    "out = {}\n" +
    "for p in sys.argv[1:]:\n" +
    "    try: out[p] = m.version(p)\n" +
    "    except m.PackageNotFoundError: out[p] = None\n" +
    "print(json.dumps(out))";
  const why: string[] = [];
  for (const python of candidates) {
    const r = spawnSync(python, ["-c", script, ...packages], { encoding: "utf8", timeout: 60_000 });
    if (r.error) {
      const code = (r.error as NodeJS.ErrnoException).code;
      why.push(`${python}: ${code === "ENOENT" ? "not found" : r.error.message}`);
      continue;
    }
    if (r.status !== 0) {
      why.push(`${python}: ${lastLine(r.stderr) || `exit code ${r.status}`}`);
      continue;
    }
    const found = JSON.parse(r.stdout) as Record<string, string | null>;
    const missing = packages.filter((p) => found[p] === null);
    if (missing.length > 0) {
      why.push(`${python}: ${missing.join(", ")} not installed`);
      continue;
    }
    return { ok: true, python, versions: found as Record<string, string> };
  }
  return {
    ok: false,
    reason: `no Python with ${packages.join(", ")} found (${why.join("; ")}); pip install -r python/requirements.txt`,
  };
}

export function lastLine(s: string | null | undefined): string {
  const lines = (s ?? "").trim().split("\n");
  return lines[lines.length - 1]?.trim() ?? "";
}
