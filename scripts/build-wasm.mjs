// Compiles the AssemblyScript kernels (assembly/kernels.ts) to build/kernels.wasm with the asc in
// node_modules. Offline and deterministic; silent on success, compiler diagnostics on failure.
// The module imports its memory (env.memory, shared, up to 4 GiB) so the JS heap and every worker
// run the kernels on the same buffers; no runtime and no abort import, so it has no data segments
// that would be re-applied to the shared memory when a worker instantiates it.
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import asc from "assemblyscript/asc";

const root = fileURLToPath(new URL("..", import.meta.url));
mkdirSync(new URL("../build/", import.meta.url), { recursive: true });

let diagnostics = "";
const sink = { write: (chunk) => ((diagnostics += String(chunk)), true) };
const { error } = await asc.main(
  [
    "assembly/kernels.ts",
    "--outFile", "build/kernels.wasm",
    "--optimizeLevel", "3",
    "--shrinkLevel", "0",
    "--noAssert",
    "--runtime", "stub",
    "--use", "abort=",
    "--enable", "simd,threads",
    "--importMemory",
    "--sharedMemory",
    "--initialMemory", "1",
    "--maximumMemory", "65536",
    "--noExportMemory",
    "--baseDir", root,
  ],
  { stdout: sink, stderr: sink },
);
if (error) {
  process.stderr.write(`build-wasm: compiling assembly/kernels.ts failed: ${error.message}\n${diagnostics}`);
  process.exit(1);
}
