/**
 * The trust-region line search of a block update on a flat parameter buffer: remembers θ_cur at the
 * start and θ_end after the epochs, and writes θ_cur + s·(θ_end − θ_cur) for any scale s, with
 * s = 1 and s = 0 reproducing θ_end and θ_cur bit for bit. Shared by every in-process policy.
 */
import type { Buf } from "./kernels/types.js";

export class StepScaler {
  private cur: Float64Array | null = null;
  private end: Float64Array | null = null;

  begin(params: Buf): void {
    this.cur = Float64Array.from(params);
    this.end = null;
  }

  apply(params: Buf, scale: number): void {
    const cur = this.cur;
    if (!cur) throw new Error("setStepScale called outside an update (beginUpdate first)");
    const end = (this.end ??= Float64Array.from(params));
    if (scale === 1) params.set(end);
    else if (scale === 0) params.set(cur);
    else for (let x = 0; x < params.length; x++) params[x] = cur[x] + scale * (end[x] - cur[x]);
  }

  finish(): void {
    this.cur = null;
    this.end = null;
  }
}
