#!/usr/bin/env bash
# The fault matrix (docs/reliability.md): SIGKILL, Ctrl-C, damaged checkpoints, two writers and a
# full disk against real `sat` processes, compared with uninterrupted runs; prints a markdown table.
#   scripts/fault-matrix.sh [--runs N] [--seed S] [--only row,row]
# Takes a few minutes (about 50 short runs with the defaults). The disk-full row needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/src/cli/main.js ] || npm run build >/dev/null
exec node scripts/fault-matrix.mjs "$@"
