// Compiles the AssemblyScript kernels in assembly/ to build/*.wasm (placeholder until kernels land).
import { existsSync } from "node:fs";
if (!existsSync(new URL("../assembly/kernels.ts", import.meta.url))) process.exit(0);
