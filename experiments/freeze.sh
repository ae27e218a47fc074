#!/bin/sh
# Pins the build the experiments run on: compiles the working tree and copies dist/, build/ and bin/
# to runs/experiments/.frozen (git-ignored), so that others rebuilding dist/ while an experiment runs
# cannot change the engine under it. Run the experiments from the repository root with
#   node runs/experiments/.frozen/dist/experiments/<experiment>.js …
# Every results file records the build's hash (dist/src/**.js + build/kernels.wasm) and git commit.
set -e
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json > /dev/null || echo "freeze: tsc reported type errors (dist/ was emitted anyway)" >&2
F=runs/experiments/.frozen
rm -rf "$F"
mkdir -p "$F"
cp -r dist build bin "$F"/
echo "froze $(git rev-parse --short HEAD) into $F"
