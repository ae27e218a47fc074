/*
 * Float32 gemm for one ISA: C (M,N) = init + op(A) @ op(B), row-major, init = C (accumulate),
 * bias broadcast over rows, or 0.
 *
 * Large products (GotoBLAS scheme): K is cut into blocks of at most KC; for each block op(B) is
 * packed once into panels of NR columns (shared by all threads), then tasks of a few MR-row strips
 * × a few panels pack their A strips and run the MR×NR register tile over them. The B panel stays
 * in L1 while the strips of the task pass, the strips in L2.
 * Small-M products with transposed B (decoding: x @ Wᵀ with a handful of rows) skip packing: a
 * 4-row × 4-column tile of dot products reads W's rows where they are.
 *
 * Every output element is summed the same way whichever thread computes it (k in order inside a
 * K block, FMA into vector lanes, blocks added in order), and task boundaries depend on the shape
 * only, so results are bit-identical for any thread count.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pool.h"
#include "simd.h"

#if SAT_ISA == 512
#define MR 12 /* rows of the register tile: 12 × 2 accumulators + 2 B vectors + 1 broadcast */
#define DR 4  /* small-M dot tile: DR rows × DC columns */
#define DC 4
#else
#define MR 6 /* 6 × 2 accumulators of 16 ymm */
#define DR 4
#define DC 2
#endif
#define NR (2 * VL)
#define KC 256        /* K block: a B panel (KC × NR) fits L1 */
#define NC 1024       /* N block: a packed B block (KC × NC, 1 MiB) stays in L2/L3 while every row group passes */
#define SMALL_M 24    /* transB products with at most this many rows take the dot-product path */
#define MIN_TASK_FMA 65536
#define PF_TILES 2 /* dot path: prefetch the weight rows this many column tiles ahead */

enum { STORE, ADD, BIAS };

/* Row-major A strip: element (r, k) at a[r * KC + k]. */
#define A_RM(a, r, k) (a)[(r) * KC + (k)]
/* k-major A strip: element (r, k) at a[k * MR + r]. */
#define A_KM(a, r, k) (a)[(k) * MR + (r)]

/* Writes an MR × NR tile of accumulators to C under `mode`; rows/cols clip the edges. */
static inline void store_tile(vf acc[MR][2], float* c, int ldc, int rows, int cols, int mode, const float* bias) {
  const vmask m0 = vmask_n(cols);
  const vmask m1 = vmask_n(cols - VL);
  vf b0 = vzero(), b1 = vzero();
  if (mode == BIAS) {
    b0 = vload_m(bias, m0);
    b1 = vload_m(bias + VL, m1);
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++) {
    if (r >= rows) break;
    float* cr = c + (size_t)r * ldc;
    vf x0 = acc[r][0], x1 = acc[r][1];
    if (mode == ADD) {
      x0 = vadd(vload_m(cr, m0), x0);
      x1 = vadd(vload_m(cr + VL, m1), x1);
    } else if (mode == BIAS) {
      x0 = vadd(b0, x0);
      x1 = vadd(b1, x1);
    }
    if (cols >= NR) {
      vstore(cr, x0);
      vstore(cr + VL, x1);
    } else {
      vstore_m(cr, x0, m0);
      vstore_m(cr + VL, x1, m1);
    }
  }
}

#define DEFINE_TILE(name, AT)                                                                                 \
  static void name(int kc, const float* a, const float* b, float* c, int ldc, int rows, int cols, int mode, \
                   const float* bias) {                                                                      \
    vf acc[MR][2];                                                                                           \
    _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = vzero();                   \
    for (int k = 0; k < kc; k++) {                                                                           \
      const vf b0 = vload(b), b1 = vload(b + VL);                                                            \
      _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++) {                                                \
        const vf x = vset1(AT(a, r, k));                                                                     \
        acc[r][0] = vfma(x, b0, acc[r][0]);                                                                  \
        acc[r][1] = vfma(x, b1, acc[r][1]);                                                                  \
      }                                                                                                      \
      b += NR;                                                                                               \
    }                                                                                                        \
    store_tile(acc, c, ldc, rows, cols, mode, bias);                                                         \
  }
DEFINE_TILE(tile_rm, A_RM)
DEFINE_TILE(tile_km, A_KM)

typedef struct {
  int transA, transB, M, N, K;
  const float* A;
  const float* B;
  float* C;
  const float* bias;
  int mode;           /* for this K block */
  int k0, kc;         /* K block */
  int p0;             /* first panel of this N block */
  float* packedB;     /* panels of this N block × kc × NR */
  int panels;         /* panels in this N block */
  int strips;         /* ceil(M / MR) */
  int spt, ppt;       /* strips and panels per task */
  int colTasks;       /* ceil(panels / ppt) */
  int packPanels;     /* panels per packing task */
} gemm_job;

/* Packs panels [p0, p1) of op(B) rows k0..k0+kc into packedB (zero-padded columns). */
static void pack_b_task(void* ctx, int task, int thread) {
  (void)thread;
  const gemm_job* g = ctx;
  const int p0 = task * g->packPanels;
  const int p1 = p0 + g->packPanels < g->panels ? p0 + g->packPanels : g->panels;
  const int kc = g->kc;
  for (int p = p0; p < p1; p++) {
    float* dst = g->packedB + (size_t)p * kc * NR;
    const int j0 = (g->p0 + p) * NR;
    const int cols = g->N - j0 < NR ? g->N - j0 : NR;
    if (!g->transB) {
      /* op(B)[k, j0..j0+NR] is contiguous in B (K, N). */
      const vmask m0 = vmask_n(cols), m1 = vmask_n(cols - VL);
      const float* src = g->B + (size_t)g->k0 * g->N + j0;
      for (int k = 0; k < kc; k++, src += g->N, dst += NR) {
        vstore(dst, vload_m(src, m0));
        vstore(dst + VL, vload_m(src + VL, m1));
      }
    } else {
      /* op(B)[k, j] = B[j, k] (B is (N, K)): column j of the panel is row j0 + j of B. */
      if (cols < NR) memset(dst, 0, (size_t)kc * NR * sizeof(float));
      for (int j = 0; j < cols; j++) {
        const float* src = g->B + (size_t)(j0 + j) * g->K + g->k0;
        for (int k = 0; k < kc; k++) dst[(size_t)k * NR + j] = src[k];
      }
    }
  }
}

/* Packs strip rows [i0, i0 + MR) of op(A), K block k0..k0+kc; missing rows are zero. */
static void pack_a(const gemm_job* g, int i0, float* dst) {
  const int rows = g->M - i0 < MR ? g->M - i0 : MR;
  const int kc = g->kc;
  if (!g->transA) {
    for (int r = 0; r < MR; r++) {
      if (r < rows) memcpy(dst + (size_t)r * KC, g->A + (size_t)(i0 + r) * g->K + g->k0, (size_t)kc * sizeof(float));
      else memset(dst + (size_t)r * KC, 0, (size_t)kc * sizeof(float));
    }
  } else {
    /* op(A)[i, k] = A[k, i] (A is (K, M)): MR consecutive floats per k. */
    const float* src = g->A + (size_t)g->k0 * g->M + i0;
    for (int k = 0; k < kc; k++, src += g->M, dst += MR) {
      int r = 0;
      for (; r < rows; r++) dst[r] = src[r];
      for (; r < MR; r++) dst[r] = 0;
    }
  }
}

static void compute_task(void* ctx, int task, int thread) {
  const gemm_job* g = ctx;
  const int s0 = (task / g->colTasks) * g->spt;
  const int p0 = (task % g->colTasks) * g->ppt;
  const int s1 = s0 + g->spt < g->strips ? s0 + g->spt : g->strips;
  const int p1 = p0 + g->ppt < g->panels ? p0 + g->ppt : g->panels;
  float* ablock = sat_scratch(thread, 0, (size_t)g->spt * MR * KC);
  if (!ablock) abort();
  for (int s = s0; s < s1; s++) pack_a(g, s * MR, ablock + (size_t)(s - s0) * MR * KC);
  for (int p = p0; p < p1; p++) {
    const float* pb = g->packedB + (size_t)p * g->kc * NR;
    const int j0 = (g->p0 + p) * NR;
    const int cols = g->N - j0 < NR ? g->N - j0 : NR;
    for (int s = s0; s < s1; s++) {
      const int i0 = s * MR;
      const int rows = g->M - i0 < MR ? g->M - i0 : MR;
      const float* pa = ablock + (size_t)(s - s0) * MR * KC;
      float* c = g->C + (size_t)i0 * g->N + j0;
      const float* bias = g->bias ? g->bias + j0 : NULL;
      if (g->transA) tile_km(g->kc, pa, pb, c, g->N, rows, cols, g->mode, bias);
      else tile_rm(g->kc, pa, pb, c, g->N, rows, cols, g->mode, bias);
    }
  }
}

static float* packed_b;
static size_t packed_b_floats;

static void gemm_blocked(int transA, int transB, int M, int N, int K, const float* A, const float* B, float* C,
                         int accumulate, const float* bias) {
  gemm_job g = {transA, transB, M, N, K, A, B, C, bias};
  const int nk = (K + KC - 1) / KC;
  const int kcMax = (K + nk - 1) / nk; /* balanced K blocks */
  const int allPanels = (N + NR - 1) / NR;
  const int blockPanels = NC / NR;
  g.strips = (M + MR - 1) / MR;
  const size_t need = (size_t)(allPanels < blockPanels ? allPanels : blockPanels) * kcMax * NR;
  if (packed_b_floats < need) {
    free(packed_b);
    packed_b = aligned_alloc(64, ((need * sizeof(float)) + 63) & ~(size_t)63);
    if (!packed_b) abort();
    packed_b_floats = need;
  }
  g.packedB = packed_b;
  for (int pb = 0; pb < allPanels; pb += blockPanels) {
    g.p0 = pb;
    g.panels = allPanels - pb < blockPanels ? allPanels - pb : blockPanels;
    /* Task shape from the shape alone: at most 4 strips (A block in L2) × 16 panels, halved until
     * there are ~32 tasks so a late thread still finds work. */
    g.spt = g.strips < 4 ? g.strips : 4;
    g.ppt = g.panels < 16 ? g.panels : 16;
    for (;;) {
      const long tasks = (long)((g.strips + g.spt - 1) / g.spt) * ((g.panels + g.ppt - 1) / g.ppt);
      const long fma = (long)g.spt * MR * g.ppt * NR * kcMax;
      if (tasks >= 32 || fma < 4 * MIN_TASK_FMA || (g.spt == 1 && g.ppt == 1)) break;
      if (g.ppt >= g.spt * 2 || g.spt == 1) g.ppt = (g.ppt + 1) / 2;
      else g.spt = (g.spt + 1) / 2;
    }
    g.colTasks = (g.panels + g.ppt - 1) / g.ppt;
    const int tasks = ((g.strips + g.spt - 1) / g.spt) * g.colTasks;
    g.packPanels = 8;
    const int packTasks = (g.panels + g.packPanels - 1) / g.packPanels;
    for (int b = 0; b < nk; b++) {
      g.k0 = b * kcMax;
      g.kc = K - g.k0 < kcMax ? K - g.k0 : kcMax;
      g.mode = b > 0 || accumulate ? ADD : bias ? BIAS : STORE;
      sat_parallel(packTasks, pack_b_task, &g);
      sat_parallel(tasks, compute_task, &g);
    }
  }
}

/* ---- small M, transposed B: C[i, j] = init + A[i, :] · B[j, :] ---- */

typedef struct {
  int M, N, K;
  const float* A;
  const float* B;
  float* C;
  int accumulate;
  const float* bias;
  int colsPerTask;
} dot_job;

/* s[c] = Σ lanes of a[c] for the DC accumulators of a row: one transposing reduction, cheaper than
 * DC separate horizontal sums (which were a third of a decode tile's instructions). */
static inline void reduce_cols(const vf* a, float* s) {
#if SAT_ISA == 512
  /* Per 128-bit block: [a0+a2, b0+b2, a1+a3, b1+b3], then [Σa, Σb, Σc, Σd] of the block; then the blocks. */
  const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a[0], a[1]), _mm512_unpackhi_ps(a[0], a[1]));
  const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(a[2], a[3]), _mm512_unpackhi_ps(a[2], a[3]));
  const __m512 x = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44), _mm512_shuffle_ps(ab, cd, 0xEE));
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)); /* AVX-512F only */
  const __m256 y = _mm256_add_ps(_mm512_castps512_ps256(x), hi);
  _mm_storeu_ps(s, _mm_add_ps(_mm256_castps256_ps128(y), _mm256_extractf128_ps(y, 1)));
#else
  /* hadd twice: [Σa, Σb, ·, ·] per 128-bit half, then the halves. */
  const __m256 h = _mm256_hadd_ps(a[0], a[1]);
  const __m256 h2 = _mm256_hadd_ps(h, h);
  const __m128 r = _mm_add_ps(_mm256_castps256_ps128(h2), _mm256_extractf128_ps(h2, 1));
  s[0] = _mm_cvtss_f32(r);
  s[1] = _mm_cvtss_f32(_mm_shuffle_ps(r, r, 1));
#endif
}

static void dot_task(void* ctx, int task, int thread) {
  (void)thread;
  const dot_job* g = ctx;
  const int K = g->K;
  const int j0 = task * g->colsPerTask;
  const int j1 = j0 + g->colsPerTask < g->N ? j0 + g->colsPerTask : g->N;
  const int kFull = K & ~(VL - 1);
  const vmask tail = vmask_n(K - kFull);
  for (int j = j0; j < j1; j += DC) {
    const float* w[DC];
#pragma GCC unroll 8
    for (int c = 0; c < DC; c++) w[c] = g->B + (size_t)(j + c < j1 ? j + c : j1 - 1) * K;
    for (int i = 0; i < g->M; i += DR) {
      const float* x[DR];
#pragma GCC unroll 8
      for (int r = 0; r < DR; r++) x[r] = g->A + (size_t)(i + r < g->M ? i + r : g->M - 1) * K;
      vf acc[DR][DC];
#pragma GCC unroll 16
      for (int r = 0; r < DR; r++)
#pragma GCC unroll 16
        for (int c = 0; c < DC; c++) acc[r][c] = vzero();
      /* The first row tile streams this column tile from memory: prefetch the next column tile's
       * rows alongside (decoding large models is bound by how fast the weights arrive). */
      const int prefetch = i == 0 && j + PF_TILES * DC < j1;
      for (int k = 0; k < kFull; k += VL) {
        vf wv[DC];
        if (prefetch) {
#pragma GCC unroll 8
          for (int c = 0; c < DC; c++) _mm_prefetch((const char*)(w[c] + (size_t)PF_TILES * DC * K + k), _MM_HINT_T0);
        }
#pragma GCC unroll 8
        for (int c = 0; c < DC; c++) wv[c] = vload(w[c] + k);
#pragma GCC unroll 8
        for (int r = 0; r < DR; r++) {
          const vf xv = vload(x[r] + k);
#pragma GCC unroll 8
          for (int c = 0; c < DC; c++) acc[r][c] = vfma(xv, wv[c], acc[r][c]);
        }
      }
      if (kFull < K) {
        vf wv[DC];
#pragma GCC unroll 8
        for (int c = 0; c < DC; c++) wv[c] = vload_m(w[c] + kFull, tail);
#pragma GCC unroll 8
        for (int r = 0; r < DR; r++) {
          const vf xv = vload_m(x[r] + kFull, tail);
#pragma GCC unroll 8
          for (int c = 0; c < DC; c++) acc[r][c] = vfma(xv, wv[c], acc[r][c]);
        }
      }
      for (int r = 0; r < DR && i + r < g->M; r++) {
        float* cr = g->C + (size_t)(i + r) * g->N;
        float s[DC];
        reduce_cols(acc[r], s);
        for (int c = 0; c < DC && j + c < j1; c++)
          cr[j + c] = g->accumulate ? cr[j + c] + s[c] : g->bias ? g->bias[j + c] + s[c] : s[c];
      }
    }
  }
}

static void gemm_dot(int M, int N, int K, const float* A, const float* B, float* C, int accumulate,
                     const float* bias) {
  dot_job g = {M, N, K, A, B, C, accumulate, bias};
  /* Enough columns per task to be worth a hand-off; a multiple of the tile width. */
  long cols = (MIN_TASK_FMA * 4L + (long)M * K - 1) / ((long)M * K);
  cols = (cols + DC - 1) / DC * DC;
  if (cols < DC) cols = DC;
  g.colsPerTask = (int)cols;
  sat_parallel((int)((N + cols - 1) / cols), dot_task, &g);
}

void SFX(sat_gemm)(int transA, int transB, int M, int N, int K, const float* A, const float* B, float* C,
                   int accumulate, const float* bias) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (accumulate) return;
    for (int i = 0; i < M; i++) {
      if (bias) memcpy(C + (size_t)i * N, bias, (size_t)N * sizeof(float));
      else memset(C + (size_t)i * N, 0, (size_t)N * sizeof(float));
    }
    return;
  }
  if (transB && !transA && M <= SMALL_M) gemm_dot(M, N, K, A, B, C, accumulate, bias);
  else gemm_blocked(transA, transB, M, N, K, A, B, C, accumulate, bias);
}
