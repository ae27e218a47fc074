/**
 * Float32 matrix multiply in WebAssembly SIMD, on a memory shared with the JS heap and the worker
 * threads. C (M,N) = op(A) @ op(B) (+= C when accumulate); row-major; every pointer is a byte
 * offset into the shared memory.
 *
 * Scheme (GotoBLAS-like, scaled down to 128-bit vectors):
 *  - `packB` copies op(B) (K,N) into panels of 8 columns, panel p = K rows of 8 floats (the last
 *    panel zero-padded), so the inner loop reads B sequentially whatever its transpose.
 *  - `gemmRows` computes output rows [m0, m1): it packs op(A) for a block of rows into tiles of 4
 *    rows (K steps of 4 floats, missing rows zero), then runs a 4×8 register tile over every
 *    (panel, row tile). 4×8 = 8 accumulators is the largest tile V8 keeps in registers.
 * Every output element is computed the same way on every path, acc = Σ_k a·b in k order with f32
 * mul then add, then C = acc or C + acc, so splitting rows between threads never changes a bit.
 * Leaves out: fused multiply-add (relaxed SIMD is behind a flag in Node 20 and was not faster).
 */

/** Rows of A packed together: a block's A tiles stay in L1/L2 while every B panel passes. */
const ROW_BLOCK: i32 = 16;

/** Bytes of scratch a thread needs for `gemmRows` with this K: the tile spill + one packed row block. */
export function scratchBytes(K: i32): i32 {
  return 128 + ROW_BLOCK * K * 4;
}

/**
 * Transposes the 4×4 block whose rows start at src, src + stride, src + 2·stride, src + 3·stride
 * and writes its rows (the source columns) at dst, dst + dstStride, ... (16 bytes each).
 */
// @ts-ignore: decorator
@inline
function transpose4x4(src: usize, stride: usize, dst: usize, dstStride: usize): void {
  const r0 = v128.load(src);
  const r1 = v128.load(src + stride);
  const r2 = v128.load(src + 2 * stride);
  const r3 = v128.load(src + 3 * stride);
  const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5); // r0[0] r1[0] r0[1] r1[1]
  const t1 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
  const t2 = i32x4.shuffle(r0, r1, 2, 6, 3, 7);
  const t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
  v128.store(dst, i32x4.shuffle(t0, t1, 0, 1, 4, 5));
  v128.store(dst + dstStride, i32x4.shuffle(t0, t1, 2, 3, 6, 7));
  v128.store(dst + 2 * dstStride, i32x4.shuffle(t2, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * dstStride, i32x4.shuffle(t2, t3, 2, 3, 6, 7));
}

/** op(B) (K,N) -> ceil(N/8) panels of (K, 8) floats at dst. B is (K,N), or (N,K) when transB. */
export function packB(transB: bool, N: i32, K: i32, b: usize, dst: usize): void {
  const panels = (N + 7) >> 3;
  for (let p = 0; p < panels; p++) {
    const j0 = p << 3;
    const cols = min(8, N - j0);
    let out = dst + <usize>p * <usize>K * 32;
    if (!transB && cols == 8) {
      // op(B)[k, j0..j0+8] is contiguous: two vector copies per k.
      let src = b + <usize>j0 * 4;
      const stride = <usize>N * 4;
      for (let k = 0; k < K; k++) {
        v128.store(out, v128.load(src));
        v128.store(out, v128.load(src, 16), 16);
        src += stride;
        out += 32;
      }
    } else if (transB && cols == 8) {
      // op(B)[k, j0..j0+8] = column k of B's rows j0..j0+8: transpose 4×4 blocks, 4 k at a time.
      const rowStride = <usize>K * 4;
      const src = b + <usize>j0 * rowStride;
      let k = 0;
      for (; k + 4 <= K; k += 4) {
        const s = src + (<usize>k << 2);
        transpose4x4(s, rowStride, out, 32);
        transpose4x4(s + 4 * rowStride, rowStride, out + 16, 32);
        out += 128;
      }
      for (; k < K; k++) {
        for (let j = 0; j < 8; j++) store<f32>(out + (<usize>j << 2), load<f32>(src + <usize>j * rowStride + (<usize>k << 2)));
        out += 32;
      }
    } else {
      // Last, partial panel: element by element, zero padding.
      for (let k = 0; k < K; k++) {
        for (let j = 0; j < 8; j++) {
          let x: f32 = 0;
          if (j < cols) {
            const col = j0 + j;
            x = transB ? load<f32>(b + ((<usize>col * K + k) << 2)) : load<f32>(b + ((<usize>k * N + col) << 2));
          }
          store<f32>(out + (<usize>j << 2), x);
        }
        out += 32;
      }
    }
  }
}

/** op(A) rows [i0, i0+rows) -> tiles of 4 rows laid out as K steps of 4 floats; missing rows are 0. */
function packA(transA: bool, M: i32, K: i32, a: usize, i0: i32, rows: i32, dst: usize): void {
  for (let t = 0; t < rows; t += 4) {
    const i = i0 + t;
    let out = dst + <usize>(t >> 2) * <usize>K * 16;
    let k = 0;
    if (t + 4 <= rows) {
      if (transA) {
        // op(A)[i..i+4, k] = A[k, i..i+4] is contiguous.
        const stride = <usize>M * 4;
        let src = a + (<usize>i << 2);
        for (; k < K; k++) {
          v128.store(out, v128.load(src));
          src += stride;
          out += 16;
        }
      } else {
        // Rows of A: transpose 4×4 blocks, 4 k at a time.
        const stride = <usize>K * 4;
        const src = a + <usize>i * stride;
        for (; k + 4 <= K; k += 4) {
          transpose4x4(src + (<usize>k << 2), stride, out, 16);
          out += 64;
        }
      }
    }
    // Leftover k steps, and partial tiles (missing rows are zero).
    const valid = min(4, rows - t);
    for (; k < K; k++) {
      for (let r = 0; r < 4; r++) {
        let x: f32 = 0;
        if (r < valid) {
          x = transA ? load<f32>(a + ((<usize>k * M + i + r) << 2)) : load<f32>(a + ((<usize>(i + r) * K + k) << 2));
        }
        store<f32>(out + (<usize>r << 2), x);
      }
      out += 16;
    }
  }
}

/**
 * The 4×8 register tile: C[0..rows, 0..cols] (=|+=) Σ_k pa[k] ⊗ pb[k]. pa is a packed A tile
 * (K × 4 floats), pb a packed B panel (K × 8 floats); ldc is C's row stride in bytes. Partial
 * tiles go through `spill` (32 floats of scratch) so only valid elements are written.
 */
// @ts-ignore: decorator
@inline
function tile4x8(pa: usize, pb: usize, K: i32, c: usize, ldc: usize, rows: i32, cols: i32, accumulate: bool, spill: usize): void {
  let c0l = f32x4.splat(0), c0h = f32x4.splat(0);
  let c1l = f32x4.splat(0), c1h = f32x4.splat(0);
  let c2l = f32x4.splat(0), c2h = f32x4.splat(0);
  let c3l = f32x4.splat(0), c3h = f32x4.splat(0);
  // Loop on the B pointer: a counter compared with K costs V8 a spilled register.
  const pbEnd = pb + <usize>K * 32;
  while (pb < pbEnd) {
    const bl = v128.load(pb);
    const bh = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c0l = f32x4.add(c0l, f32x4.mul(a, bl));
    c0h = f32x4.add(c0h, f32x4.mul(a, bh));
    a = v128.load32_splat(pa, 4);
    c1l = f32x4.add(c1l, f32x4.mul(a, bl));
    c1h = f32x4.add(c1h, f32x4.mul(a, bh));
    a = v128.load32_splat(pa, 8);
    c2l = f32x4.add(c2l, f32x4.mul(a, bl));
    c2h = f32x4.add(c2h, f32x4.mul(a, bh));
    a = v128.load32_splat(pa, 12);
    c3l = f32x4.add(c3l, f32x4.mul(a, bl));
    c3h = f32x4.add(c3h, f32x4.mul(a, bh));
    pa += 16;
    pb += 32;
  }
  if (rows == 4 && cols == 8) {
    if (accumulate) {
      c0l = f32x4.add(v128.load(c), c0l);
      c0h = f32x4.add(v128.load(c, 16), c0h);
      c1l = f32x4.add(v128.load(c + ldc), c1l);
      c1h = f32x4.add(v128.load(c + ldc, 16), c1h);
      c2l = f32x4.add(v128.load(c + 2 * ldc), c2l);
      c2h = f32x4.add(v128.load(c + 2 * ldc, 16), c2h);
      c3l = f32x4.add(v128.load(c + 3 * ldc), c3l);
      c3h = f32x4.add(v128.load(c + 3 * ldc, 16), c3h);
    }
    v128.store(c, c0l);
    v128.store(c, c0h, 16);
    v128.store(c + ldc, c1l);
    v128.store(c + ldc, c1h, 16);
    v128.store(c + 2 * ldc, c2l);
    v128.store(c + 2 * ldc, c2h, 16);
    v128.store(c + 3 * ldc, c3l);
    v128.store(c + 3 * ldc, c3h, 16);
    return;
  }
  v128.store(spill, c0l);
  v128.store(spill, c0h, 16);
  v128.store(spill, c1l, 32);
  v128.store(spill, c1h, 48);
  v128.store(spill, c2l, 64);
  v128.store(spill, c2h, 80);
  v128.store(spill, c3l, 96);
  v128.store(spill, c3h, 112);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const dst = c + <usize>r * ldc + (<usize>j << 2);
      const acc = load<f32>(spill + (<usize>(r * 8 + j) << 2));
      store<f32>(dst, accumulate ? load<f32>(dst) + acc : acc);
    }
  }
}

/**
 * Output rows [m0, m1) of C (M,N) = op(A) @ op(B), with op(B) already packed by `packB`.
 * A is (M,K), or (K,M) when transA. scratch: `scratchBytes(K)` bytes private to the calling thread.
 */
export function gemmRows(
  transA: bool,
  M: i32,
  N: i32,
  K: i32,
  a: usize,
  packedB: usize,
  c: usize,
  accumulate: bool,
  m0: i32,
  m1: i32,
  scratch: usize,
): void {
  const spill = scratch;
  const packedA = scratch + 128;
  const panels = (N + 7) >> 3;
  const ldc = <usize>N * 4;
  for (let i0 = m0; i0 < m1; i0 += ROW_BLOCK) {
    const blockRows = min(ROW_BLOCK, m1 - i0);
    packA(transA, M, K, a, i0, blockRows, packedA);
    for (let p = 0; p < panels; p++) {
      const cols = min(8, N - (p << 3));
      const pb = packedB + <usize>p * <usize>K * 32;
      for (let t = 0; t < blockRows; t += 4) {
        const pa = packedA + <usize>(t >> 2) * <usize>K * 16;
        const cTile = c + <usize>(i0 + t) * ldc + (<usize>p << 5);
        tile4x8(pa, pb, K, cTile, ldc, min(4, blockRows - t), cols, accumulate, spill);
      }
    }
  }
}
