/**
 * When a training loop writes a checkpoint: every `run.save_steps` steps, and also once
 * `run.save_interval_s` seconds have passed since the last one (so a killed run loses at most about
 * that much work, whatever a step costs), besides the final step and Ctrl-C, which the loops handle.
 * Which checkpoints exist never changes results: every random stream is restored from them.
 */
export class SavePolicy {
  private last: number;

  constructor(
    private readonly saveSteps: number,
    private readonly intervalS: number,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    this.last = nowMs();
  }

  /** True when step `step` (just finished) should be checkpointed. */
  due(step: number): boolean {
    if (this.saveSteps > 0 && step % this.saveSteps === 0) return true;
    return this.intervalS > 0 && this.nowMs() - this.last >= this.intervalS * 1000;
  }

  /** Records that a checkpoint was just written. */
  saved(): void {
    this.last = this.nowMs();
  }
}
