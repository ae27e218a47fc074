#!/usr/bin/env node
// The `sat` command: a thin launcher for the compiled CLI.
import("../dist/src/cli/main.js").catch((err) => {
  console.error(`sat: cannot start (${err && err.message ? err.message : err}); run \`npm run build\` first`);
  process.exit(1);
});
