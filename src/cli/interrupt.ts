/**
 * Ctrl-C handling for the `sat` process. The first SIGINT aborts the signal handed to commands
 * and prints one line; the command stops after its current write (atomic writes here are
 * synchronous, so a write in progress always completes) and the process exits 130. If the command
 * does not return within the grace period, or on a second Ctrl-C, the process exits at once.
 */
import { EXIT_INTERRUPTED } from "./errors.js";

export interface RunMainOptions {
  /** How long to wait for the command to stop after Ctrl-C, in ms. */
  graceMs?: number;
}

export async function runMain(
  task: (signal: AbortSignal) => Promise<number>,
  opts: RunMainOptions = {},
): Promise<never> {
  const controller = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(EXIT_INTERRUPTED);
    interrupted = true;
    process.stderr.write(
      "sat: interrupted; stopping after the current write (Ctrl-C again to quit at once)\n",
    );
    controller.abort(new Error("interrupted"));
    setTimeout(() => process.exit(EXIT_INTERRUPTED), opts.graceMs ?? 10_000).unref();
  };
  process.on("SIGINT", onSigint);
  // A closed pipe (`sat config | head`) is not an error worth a stack trace.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
  let code: number;
  try {
    code = await task(controller.signal);
  } catch (err) {
    // runCli reports its own errors; this is only a last resort.
    process.stderr.write(`sat: ${(err as Error)?.message ?? String(err)}\n`);
    code = 1;
  }
  const exitCode = interrupted ? EXIT_INTERRUPTED : code;
  // Exit once stdout has flushed, so piped output is never cut short.
  await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  process.exit(exitCode);
}
