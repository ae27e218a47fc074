// Builds the native kernels (native/, node-gyp against the Node headers on this machine) and never
// fails: without a toolchain, headers or an x64 CPU it writes why to native/build/status.json,
// prints one line and exits 0, and the engine runs on WebAssembly instead. Offline-safe: node-gyp
// gets the headers directory explicitly (a bare `node-gyp rebuild` would try to download them).
// Skips the build when the addon is newer than every source; `--force` rebuilds.
//
//   node scripts/build-native.mjs [--force] [--quiet]
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const native = join(root, "native");
const addon = join(native, "build", "Release", "sat_native.node");
const statusFile = join(native, "build", "status.json");
const force = process.argv.includes("--force");
const quiet = process.argv.includes("--quiet");

function finish(ok, reason) {
  mkdirSync(dirname(statusFile), { recursive: true });
  writeFileSync(statusFile, JSON.stringify({ ok, reason, node: process.version, at: new Date().toISOString() }) + "\n");
  if (!ok) process.stdout.write(`sat-llm: native kernels not built (${reason}); using WebAssembly\n`);
  else if (!quiet) process.stdout.write(`sat-llm: native kernels built (${addon})\n`);
  process.exit(0);
}

function upToDate() {
  if (!existsSync(addon)) return false;
  const built = statSync(addon).mtimeMs;
  return readdirSync(native)
    .filter((f) => /\.(c|h|gyp)$/.test(f))
    .every((f) => statSync(join(native, f)).mtimeMs <= built);
}

/** node-gyp: npm's own copy (npm sets npm_config_node_gyp for scripts), next to this node, or installed. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
  ];
  try {
    candidates.push(createRequire(import.meta.url).resolve("node-gyp/bin/node-gyp.js"));
  } catch {
    // not installed locally
  }
  return candidates.find((p) => p && existsSync(p));
}

/** The directory holding include/node/node_api.h for this node (its install prefix, or $npm_config_nodedir). */
function findNodeDir() {
  const candidates = [process.env.npm_config_nodedir, join(dirname(process.execPath), "..")];
  return candidates.find((d) => d && existsSync(join(d, "include", "node", "node_api.h")));
}

try {
  if (process.env.SAT_SKIP_NATIVE) finish(false, "SAT_SKIP_NATIVE is set");
  if (process.arch !== "x64") finish(false, `x64 only, this is ${process.arch}`);
  if (!force && upToDate()) process.exit(0);
  const gyp = findNodeGyp();
  if (!gyp) finish(false, "node-gyp not found");
  const nodedir = findNodeDir();
  if (!nodedir) finish(false, `no Node headers (include/node/node_api.h) next to ${process.execPath}`);
  for (const tool of ["make", "cc", "python3"]) {
    const r = spawnSync(tool, ["--version"], { stdio: "ignore" });
    if (r.error) finish(false, `${tool} not found`);
  }
  const r = spawnSync(process.execPath, [gyp, "rebuild", "--release", `--nodedir=${nodedir}`, `--directory=${native}`], {
    encoding: "utf8",
    env: { ...process.env, JOBS: "2" },
  });
  if (r.status !== 0 || !existsSync(addon)) {
    const lines = `${r.stderr ?? ""}\n${r.stdout ?? ""}`.split("\n").filter((l) => /error/i.test(l));
    finish(false, `node-gyp failed: ${lines[0]?.trim() ?? r.error?.message ?? `exit ${r.status}`}`);
  }
  finish(true, null);
} catch (err) {
  finish(false, err instanceof Error ? err.message : String(err));
}
