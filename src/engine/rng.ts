/**
 * Seeded random numbers. Every consumer receives an Rng object; nothing in the project calls
 * Math.random. Generator: xoshiro128** (32-bit state words, fast in JS, good statistical quality),
 * seeded through splitmix32 so nearby seeds give unrelated streams. The state is four uint32 plus
 * a cached Gaussian, so it can be saved to JSON and restored exactly (checkpoints, resume).
 *
 * Named sub-streams (`rng.fork("rollout")`) are derived from the root seed and the name only, so
 * adding a new consumer never shifts the numbers another consumer sees.
 */

export interface RngState {
  s: [number, number, number, number];
  spare: number | null;
}

function splitmix32(x: number): () => number {
  return () => {
    x = (x + 0x9e3779b9) | 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** FNV-1a hash of a string to uint32: used to turn stream names into seeds. */
export function hashString(str: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;
  private spare: number | null = null;
  /** The seed this stream was created from (a number or a derived hash); forks derive from it. */
  readonly seed: number;

  constructor(seed: number | string) {
    this.seed = typeof seed === "string" ? hashString(seed) : seed >>> 0;
    const sm = splitmix32(this.seed);
    this.s0 = sm();
    this.s1 = sm();
    this.s2 = sm();
    this.s3 = sm();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** An independent stream determined by this stream's seed and `name` only. */
  fork(name: string): Rng {
    return new Rng(hashString(`${this.seed}/${name}`));
  }

  /** Uniform uint32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n > 0)) throw new Error(`Rng.int: n must be positive, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller, the second value cached in the state). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Index drawn from unnormalised non-negative weights probs[off .. off+n). */
  categorical(probs: ArrayLike<number>, n = probs.length, off = 0): number {
    return inverseCdf(probs, this.uniform(), n, off);
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = xs[i];
      xs[i] = xs[j];
      xs[j] = tmp;
    }
    return xs;
  }

  getState(): RngState {
    return { s: [this.s0, this.s1, this.s2, this.s3], spare: this.spare };
  }

  setState(state: RngState): void {
    [this.s0, this.s1, this.s2, this.s3] = state.s.map((x) => x >>> 0) as [number, number, number, number];
    this.spare = state.spare;
  }
}

/**
 * The index i of unnormalised non-negative weights probs[off .. off+n) where the running sum first
 * exceeds u·total, scanning in index order: a draw with the uniform u. Any backend that scans the
 * same weights in the same order with the same u picks the same index.
 */
export function inverseCdf(probs: ArrayLike<number>, u: number, n = probs.length, off = 0): number {
  let total = 0;
  for (let i = 0; i < n; i++) total += probs[off + i];
  let rest = u * total;
  for (let i = 0; i < n; i++) {
    rest -= probs[off + i];
    if (rest < 0) return i;
  }
  // Rounding left the rest marginally ≥ 0: return the last index with non-zero weight.
  for (let i = n - 1; i >= 0; i--) if (probs[off + i] > 0) return i;
  return n - 1;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
