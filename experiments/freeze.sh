#!/bin/sh
# Pins the build the experiments run on: compiles the working tree straight into
# runs/experiments/.frozen/dist (or the directory given as the first argument; git-ignored, the
# shared dist/ is not touched) and copies build/ and bin/ next to it, so that others rebuilding
# dist/ while an experiment runs cannot change the engine under it. Run the experiments from the
# repository root with
#   node runs/experiments/.frozen/dist/experiments/<experiment>.js …
# build-info.json records the commit and any uncommitted source changes; every results file
# records it with the build's hash (dist/src/**.js + build/kernels.wasm).
set -e
cd "$(dirname "$0")/.."
F=${1:-runs/experiments/.frozen}
rm -rf "$F"
mkdir -p "$F"
npx tsc -p tsconfig.json --outDir "$F/dist" > /dev/null || echo "freeze: tsc reported type errors (the build was emitted anyway)" >&2
cp -r build bin "$F"/
node -e '
const { execSync } = require("node:child_process");
const commit = execSync("git rev-parse HEAD").toString().trim();
const dirty = execSync("git status --short src assembly").toString().split("\n").filter((l) => l.trim() !== "");
require("node:fs").writeFileSync(process.argv[1], JSON.stringify({ commit, dirty_sources: dirty, time: new Date().toISOString() }, null, 2) + "\n");
' "$F/build-info.json"
echo "froze $(git rev-parse --short HEAD) into $F"
