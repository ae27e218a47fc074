// Runs the compiled test suite with Node's built-in runner. Flags given after `npm test --`
// (e.g. --test-name-pattern="adam rewind:") go before the test directory, where node reads them;
// appended after it they would be taken for file names.
import { spawnSync } from "node:child_process";

const userArgs = process.argv.slice(2);
const concurrency = userArgs.some((a) => a.startsWith("--test-concurrency")) ? [] : ["--test-concurrency=2"];
const { status, signal } = spawnSync(
  process.execPath,
  ["--test", ...concurrency, ...userArgs, "dist/test/"],
  {
    stdio: "inherit",
  },
);
process.exit(status ?? (signal ? 1 : 0));
