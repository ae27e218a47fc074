/** Entry point of the `sat` executable (bin/sat.js imports this file). */
import { runMain } from "./interrupt.js";
import { runCli } from "./program.js";

void runMain((signal) => runCli(process.argv.slice(2), { signal }));
